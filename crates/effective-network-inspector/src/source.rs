//! Where effective state comes from: saved az JSON files ([`FileSource`]) or the cloud
//! control plane through cloud-provider ([`crate::live::LiveSource`]).

use std::path::PathBuf;

use crate::state::{nsgs_from_json, routes_from_json, NicState, NsgEntry, RouteEntry};
use crate::EniError;

/// Which NICs to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every NIC of a VM.
    Vm(String),
    /// One NIC.
    Nic(String),
    /// Every NIC in a VNet.
    Vnet(String),
    /// Every NIC the source knows.
    All,
}

/// A NIC as a source names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicRef {
    /// NIC name.
    pub name: String,
    /// Its private addresses, when known.
    pub ip_addresses: Vec<String>,
    /// Its resource group, when the source knows it (live sources).
    pub resource_group: Option<String>,
}

/// A provider of effective state.
pub trait EffectiveStateSource {
    /// A short description for artifacts (`offline-files`, `azure`).
    fn describe(&self) -> String;
    /// The NICs in `scope`.
    fn nics(&self, scope: &Scope) -> Result<Vec<NicRef>, EniError>;
    /// A NIC's effective routes.
    fn routes(&self, nic: &NicRef) -> Result<Vec<RouteEntry>, EniError>;
    /// A NIC's effective NSGs.
    fn nsgs(&self, nic: &NicRef) -> Result<Vec<NsgEntry>, EniError>;

    /// Reads every NIC of `scope` into states.
    fn collect(&self, scope: &Scope) -> Result<Vec<NicState>, EniError> {
        let mut out = Vec::new();
        for nic in self.nics(scope)? {
            let mut routes = self.routes(&nic)?;
            routes.sort();
            let nsgs = self.nsgs(&nic)?;
            out.push(NicState {
                name: nic.name,
                ip_addresses: nic.ip_addresses,
                routes,
                nsgs,
            });
        }
        Ok(out)
    }
}

/// One NIC's saved files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicFiles {
    /// NIC name.
    pub name: String,
    /// `az network nic show-effective-route-table` output.
    pub routes_file: PathBuf,
    /// `az network nic list-effective-nsg` output.
    pub nsg_file: PathBuf,
    /// The NIC's addresses.
    pub ip_addresses: Vec<String>,
}

/// Effective state from saved az JSON files.
#[derive(Debug, Clone, Default)]
pub struct FileSource {
    /// The NICs.
    pub nics: Vec<NicFiles>,
}

fn read(path: &PathBuf) -> Result<String, EniError> {
    std::fs::read_to_string(path).map_err(|e| {
        EniError::Usage(format!(
            "cannot read {}: {e}; check the path",
            path.display()
        ))
    })
}

impl FileSource {
    fn find(&self, nic: &NicRef) -> Result<&NicFiles, EniError> {
        self.nics
            .iter()
            .find(|n| n.name == nic.name)
            .ok_or_else(|| EniError::Usage(format!("no files were given for NIC {}", nic.name)))
    }
}

impl EffectiveStateSource for FileSource {
    fn describe(&self) -> String {
        "offline-files".into()
    }

    fn nics(&self, scope: &Scope) -> Result<Vec<NicRef>, EniError> {
        let all = self.nics.iter().map(|n| NicRef {
            name: n.name.clone(),
            ip_addresses: n.ip_addresses.clone(),
            resource_group: None,
        });
        match scope {
            Scope::All => Ok(all.collect()),
            Scope::Nic(name) => {
                let v: Vec<NicRef> = all.filter(|n| &n.name == name).collect();
                if v.is_empty() {
                    Err(EniError::Usage(format!("no files were given for NIC {name}")))
                } else {
                    Ok(v)
                }
            }
            Scope::Vm(_) | Scope::Vnet(_) => Err(EniError::Usage(
                "saved files cannot resolve a VM or VNet scope (that needs live retrieval: --vm-name or --vnet-id); name each NIC with --nic".into(),
            )),
        }
    }

    fn routes(&self, nic: &NicRef) -> Result<Vec<RouteEntry>, EniError> {
        let f = self.find(nic)?;
        routes_from_json(&read(&f.routes_file)?)
            .map_err(|e| EniError::Input(format!("{}: {e}", f.routes_file.display())))
    }

    fn nsgs(&self, nic: &NicRef) -> Result<Vec<NsgEntry>, EniError> {
        let f = self.find(nic)?;
        nsgs_from_json(&read(&f.nsg_file)?)
            .map_err(|e| EniError::Input(format!("{}: {e}", f.nsg_file.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn file_source_reads_nics_and_refuses_live_scopes() {
        let src = FileSource {
            nics: vec![NicFiles {
                name: "web-nic".into(),
                routes_file: fixture("web-routes.json"),
                nsg_file: fixture("web-nsg.json"),
                ip_addresses: vec!["10.0.1.4".into()],
            }],
        };
        let nics = src.collect(&Scope::All).unwrap();
        assert_eq!(nics.len(), 1);
        assert_eq!(nics[0].nsgs.len(), 2);
        assert_eq!(nics[0].nsgs[0].association, crate::state::Gate::Subnet);
        assert!(nics[0].routes.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(src.nics(&Scope::Nic("web-nic".into())).unwrap().len(), 1);
        assert_eq!(
            src.nics(&Scope::Nic("x".into())).unwrap_err().exit_code(),
            2
        );
        let e = src.nics(&Scope::Vm("vm".into())).unwrap_err();
        assert!(e.to_string().contains("live retrieval"), "{e}");
        assert_eq!(
            src.nics(&Scope::Vnet("v".into())).unwrap_err().exit_code(),
            2
        );
        let bad = FileSource {
            nics: vec![NicFiles {
                name: "x".into(),
                routes_file: fixture("malformed.json"),
                nsg_file: fixture("web-nsg.json"),
                ip_addresses: vec![],
            }],
        };
        let e = bad.collect(&Scope::All).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("malformed.json"), "{e}");
    }
}
