//! The storage state file shared by the lab builder (which writes it), the `az` front end
//! (which changes it) and the blob service (which re-reads it on every request, so a change
//! takes effect at once).
//!
//! Stored as pretty JSON at `{run_dir}/storage.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Everything the blob service needs to enforce the storage firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageState {
    /// Storage accounts served by the lab endpoint.
    pub accounts: Vec<StorageAccountState>,
    /// Every subnet of the lab, with its prefix and service endpoints.
    pub subnets: Vec<SubnetState>,
}

/// One storage account and its firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageAccountState {
    /// Account name (3-24 lowercase letters and digits).
    pub name: String,
    /// Containers that exist.
    pub containers: Vec<String>,
    /// Firewall default action: `Allow` or `Deny`.
    pub default_action: String,
    /// Subnets (by name, as `vnet/subnet`) allowed by virtual-network rules.
    pub vnet_rules: Vec<String>,
    /// Allowed public source addresses or CIDR prefixes.
    #[serde(default)]
    pub ip_rules: Vec<String>,
}

/// One subnet as the storage firewall sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetState {
    /// `vnet/subnet`.
    pub name: String,
    /// The subnet's address prefix, e.g. `198.18.1.0/24`.
    pub prefix: String,
    /// Service endpoints enabled on the subnet, e.g. `Microsoft.Storage`.
    pub service_endpoints: Vec<String>,
}

impl StorageState {
    /// Reads the state file.
    pub fn load(path: &Path) -> anyhow::Result<StorageState> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read storage state {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("storage state {} is not valid: {e}", path.display()))
    }

    /// Writes the state file atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
