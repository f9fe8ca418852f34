//! Time zone of a guest (reference section 5.13, misc): hcsshim sends it to
//! the Linux GCS when the utility VM is created.

hcs_struct! {
    /// A Win32 `SYSTEMTIME`, 2.1.
    pub struct SystemTime {
        /// Year.
        "Year" => year: u16,
        /// Month.
        "Month" => month: u16,
        /// Day of week.
        "DayOfWeek" => day_of_week: u16,
        /// Day.
        "Day" => day: u16,
        /// Hour.
        "Hour" => hour: u16,
        /// Minute.
        "Minute" => minute: u16,
        /// Second.
        "Second" => second: u16,
        /// Milliseconds.
        "Milliseconds" => milliseconds: u16,
    }
}

hcs_struct! {
    /// A Win32 `TIME_ZONE_INFORMATION`, 2.1.
    pub struct TimeZoneInformation {
        /// Bias in minutes.
        "Bias" => bias: i32,
        /// Standard time name.
        "StandardName" => standard_name: String,
        /// Start of standard time.
        "StandardDate" => standard_date: SystemTime,
        /// Standard bias.
        "StandardBias" => standard_bias: i32,
        /// Daylight time name.
        "DaylightName" => daylight_name: String,
        /// Start of daylight time.
        "DaylightDate" => daylight_date: SystemTime,
        /// Daylight bias.
        "DaylightBias" => daylight_bias: i32,
    }
}
