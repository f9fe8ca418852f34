//! Layer-storage documents of computestorage.dll (reference section 5.12), kept minimal.

use crate::container::Layer;
use crate::enums::OsLayerType;
use crate::version::Version;

hcs_struct! {
    /// The parent chain of a layer, passed to the layer functions.
    pub struct LayerData {
        /// Schema version, 2.1.
        "SchemaVersion" => schema_version: Version,
        /// Parent layers, 2.1.
        "Layers" => layers: Vec<Layer>,
    }
}

hcs_struct! {
    /// Options of HcsSetupBaseOSLayer / HcsSetupBaseOSVolume.
    pub struct OsLayerOptions {
        /// Container or VM layer.
        "Type" => layer_type: OsLayerType,
        /// 2.1.
        "DisableCiCacheOptimization" => disable_ci_cache_optimization: bool,
        /// 2.5.
        "SkipUpdateBcdForBoot" => skip_update_bcd_for_boot: bool,
    }
}

hcs_struct! {
    /// Options of HcsExportLayer.
    pub struct ExportLayerOptions {
        /// The layer is writable, 2.1.
        "IsWritableLayer" => is_writable_layer: bool,
    }
}
