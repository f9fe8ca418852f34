//! The two macros every schema type is written with.
//!
//! `hcs_struct!` gives each field an explicit `#[serde(rename = "...")]`, so
//! the JSON name is always written out exactly as HCS spells it (`SizeInMB`,
//! `UserTime100ns`, ...) instead of being derived from the Rust name.

/// Declares a schema object: every field optional, unknown fields rejected,
/// absent fields not serialised.
///
/// ```text
/// hcs_struct! {
///     /// Doc of the type.
///     pub struct Example {
///         /// Doc of the field.
///         "JsonName" | "AcceptedAlias" => rust_name: u64,
///     }
/// }
/// ```
macro_rules! hcs_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $json:literal $(| $alias:literal)* => $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[doc = concat!("\n\nJSON: `", $json, "`.")]
                #[serde(rename = $json, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        // Deserialisation goes through a private twin so that the derived
        // visitor can be wrapped: serde's derive also accepts a JSON array
        // (fields by position) for a struct, HCS documents never do.
        const _: () = {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Raw {
                $(
                    #[serde(rename = $json, $(alias = $alias,)* default)]
                    $field: Option<$ty>,
                )*
            }

            impl<'de> serde::Deserialize<'de> for $name {
                fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                    let raw = <Raw as serde::Deserialize>::deserialize($crate::object::ObjectOnly(deserializer, stringify!($name)))?;
                    let _ = &raw;
                    Ok($name { $($field: raw.$field,)* })
                }
            }
        };

        // The member list the classification table (crate::fields) is
        // checked against, and the walk that refuses what it marks Refused.
        impl $crate::fields::Fields for $name {
            fn info() -> Option<&'static $crate::fields::TypeInfo> {
                static INFO: $crate::fields::TypeInfo = $crate::fields::TypeInfo {
                    name: stringify!($name),
                    members: &[$(
                        $crate::fields::Member {
                            json: $json,
                            aliases: &[$($alias),*],
                            info: <$ty as $crate::fields::Fields>::info,
                            shape: <$ty as $crate::fields::Fields>::shape,
                        },
                    )*],
                };
                Some(&INFO)
            }

            fn refuse_unsupported(
                &self,
                cx: &$crate::fields::Context<'_>,
                path: &str,
            ) -> Result<(), hcs_errors::HcsError> {
                let _ = (cx, path);
                $(
                    if let Some(value) = &self.$field {
                        let at = $crate::validate::member(path, $json);
                        $crate::fields::check_member(cx, stringify!($name), $json, &at, value)?;
                        $crate::fields::Fields::refuse_unsupported(value, cx, &at)?;
                    }
                )*
                Ok(())
            }
        }
    };
}

/// Declares an enumeration serialised as one of a fixed set of JSON strings.
///
/// Generates `ALL`, `NAMES`, `as_str()`, `Display`, `FromStr` and string-only
/// serde impls: a number or any other JSON type is "invalid type: ...,
/// expected a string, one of `A`, `B` (Name)", an unknown string is
/// "unknown variant `X`, expected one of ...".
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[doc = concat!("JSON `\"", $value, "\"`.")]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in the order of the schema.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The JSON strings of every value, in the order of the schema.
            pub const NAMES: &'static [&'static str] = &[$($value),+];

            /// The exact JSON string of this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }
        }

        // An enumeration is a leaf of the classification walk.
        impl $crate::fields::Fields for $name {}

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::enums::ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($value => Ok($name::$variant),)+
                    _ => Err($crate::enums::ParseEnumError::new(stringify!($name), s, $name::NAMES)),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct StrVisitor;

                impl serde::de::Visitor<'_> for StrVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.write_str("a string, one of ")?;
                        for (i, name) in $name::NAMES.iter().enumerate() {
                            if i > 0 {
                                f.write_str(", ")?;
                            }
                            write!(f, "`{name}`")?;
                        }
                        write!(f, " ({})", stringify!($name))
                    }

                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse::<$name>().map_err(|_| E::unknown_variant(v, $name::NAMES))
                    }
                }

                deserializer.deserialize_str(StrVisitor)
            }
        }
    };
}
