//! The command table of `netlab az` and the handlers. Read commands build Azure's shapes
//! from the live topology; mutating commands change a copy of it and hand it to
//! [`Lab::apply_topology`], which recompiles the fabric before anything is printed.

use std::path::Path;

use serde_json::{json, Value};

use super::args::{parse_options, parse_spec, Parsed};
use super::shapes::{self, VmFacts};
use super::AzError;
use crate::lab::Lab;
use crate::scenario::{NsgRule, Route, RouteTable, Topology, Vm};

/// What a handler gets: the loaded lab.
pub struct Ctx {
    /// The lab.
    pub lab: Lab,
}

type Out = Result<Option<Value>, AzError>;
/// A command handler.
pub type Handler = fn(&mut Ctx, &Parsed) -> Out;

/// One az command.
pub struct Command {
    /// Words after `az`.
    pub path: &'static str,
    /// Options (see [`parse_spec`]).
    pub spec: &'static str,
    /// One-line summary.
    pub help: &'static str,
    /// Handler.
    pub handler: Handler,
}

/// Every supported command.
pub static COMMANDS: &[Command] = &[
    Command { path: "account show", spec: "--name/-n", help: "Subscription of the lab.", handler: account_show },
    Command { path: "group show", spec: "--name/-n/--resource-group/-g!", help: "The lab's resource group.", handler: group_show },
    Command { path: "vm show", spec: "--resource-group/-g! --name/-n! --show-details/-d?", help: "A VM.", handler: vm_show },
    Command { path: "vm list", spec: "--resource-group/-g --show-details/-d?", help: "VMs.", handler: vm_list },
    Command { path: "vm list-ip-addresses", spec: "--resource-group/-g --name/-n", help: "Private and public IPs of VMs.", handler: vm_list_ip },
    Command { path: "vm nic list", spec: "--resource-group/-g! --vm-name!", help: "NICs of a VM.", handler: vm_nic_list },
    Command { path: "vm extension list", spec: "--resource-group/-g! --vm-name!", help: "Extensions of a VM (every lab VM has the Network Watcher agent).", handler: vm_extension_list },
    Command { path: "vm get-instance-view", spec: "--resource-group/-g! --name/-n!", help: "A VM with its power state.", handler: vm_instance_view },
    Command { path: "vm run-command invoke", spec: "--resource-group/-g! --name/-n! --command-id! --scripts* --parameters*", help: "Run a shell script in the VM (its namespace).", handler: vm_run_command },
    Command { path: "network nic show", spec: "--resource-group/-g! --name/-n!", help: "A NIC.", handler: nic_show },
    Command { path: "network nic list", spec: "--resource-group/-g", help: "NICs.", handler: nic_list },
    Command { path: "network nic list-effective-nsg", spec: "--resource-group/-g! --name/-n!", help: "Effective security rules of a NIC.", handler: nic_effective_nsg },
    Command { path: "network nic show-effective-route-table", spec: "--resource-group/-g! --name/-n!", help: "Effective routes of a NIC.", handler: nic_effective_routes },
    Command { path: "network nsg show", spec: "--resource-group/-g! --name/-n!", help: "An NSG.", handler: nsg_show },
    Command { path: "network nsg list", spec: "--resource-group/-g", help: "NSGs.", handler: nsg_list },
    Command { path: "network nsg create", spec: "--resource-group/-g! --name/-n! --location/-l --tags*", help: "Create an NSG.", handler: nsg_create },
    Command { path: "network nsg delete", spec: "--resource-group/-g! --name/-n! --no-wait?", help: "Delete an NSG (refused while associated).", handler: nsg_delete },
    Command { path: "network nsg rule list", spec: "--resource-group/-g! --nsg-name! --include-default?", help: "Rules of an NSG.", handler: rule_list },
    Command { path: "network nsg rule show", spec: "--resource-group/-g! --nsg-name! --name/-n!", help: "A rule.", handler: rule_show },
    Command { path: "network nsg rule create", spec: "--resource-group/-g! --nsg-name! --name/-n! --priority! --access --direction --protocol --source-address-prefixes* --source-port-ranges* --destination-address-prefixes* --destination-port-ranges* --description --no-wait?", help: "Create a rule.", handler: rule_create },
    Command { path: "network nsg rule update", spec: "--resource-group/-g! --nsg-name! --name/-n! --priority --access --direction --protocol --source-address-prefixes* --source-port-ranges* --destination-address-prefixes* --destination-port-ranges* --description --no-wait?", help: "Update a rule.", handler: rule_update },
    Command { path: "network nsg rule delete", spec: "--resource-group/-g! --nsg-name! --name/-n! --no-wait?", help: "Delete a rule.", handler: rule_delete },
    Command { path: "network route-table show", spec: "--resource-group/-g! --name/-n!", help: "A route table.", handler: rt_show },
    Command { path: "network route-table list", spec: "--resource-group/-g", help: "Route tables.", handler: rt_list },
    Command { path: "network route-table create", spec: "--resource-group/-g! --name/-n! --location/-l --tags*", help: "Create a route table.", handler: rt_create },
    Command { path: "network route-table delete", spec: "--resource-group/-g! --name/-n! --no-wait?", help: "Delete a route table (refused while associated).", handler: rt_delete },
    Command { path: "network route-table route list", spec: "--resource-group/-g! --route-table-name!", help: "Routes of a table.", handler: route_list },
    Command { path: "network route-table route show", spec: "--resource-group/-g! --route-table-name! --name/-n!", help: "A route.", handler: route_show },
    Command { path: "network route-table route create", spec: "--resource-group/-g! --route-table-name! --name/-n! --address-prefix! --next-hop-type! --next-hop-ip-address --no-wait?", help: "Create a route.", handler: route_create },
    Command { path: "network route-table route delete", spec: "--resource-group/-g! --route-table-name! --name/-n! --no-wait?", help: "Delete a route.", handler: route_delete },
    Command { path: "network vnet show", spec: "--resource-group/-g! --name/-n!", help: "The VNet.", handler: vnet_show },
    Command { path: "network vnet list", spec: "--resource-group/-g", help: "VNets.", handler: vnet_list },
    Command { path: "network vnet subnet show", spec: "--resource-group/-g! --vnet-name! --name/-n!", help: "A subnet.", handler: subnet_show },
    Command { path: "network vnet subnet list", spec: "--resource-group/-g! --vnet-name!", help: "Subnets.", handler: subnet_list },
    Command { path: "network vnet subnet update", spec: "--resource-group/-g! --vnet-name! --name/-n! --network-security-group/--nsg --route-table --service-endpoints* --remove* --no-wait?", help: "Change a subnet's NSG, route table or service endpoints.", handler: subnet_update },
    Command { path: "storage account show", spec: "--resource-group/-g --name/-n!", help: "A storage account.", handler: sa_show },
    Command { path: "storage account list", spec: "--resource-group/-g", help: "Storage accounts.", handler: sa_list },
    Command { path: "storage account update", spec: "--resource-group/-g --name/-n! --default-action --bypass*", help: "Set the firewall default action.", handler: sa_update },
    Command { path: "storage account network-rule list", spec: "--resource-group/-g --account-name/-n!", help: "Firewall rules.", handler: nr_list },
    Command { path: "storage account network-rule add", spec: "--resource-group/-g --account-name/-n! --ip-address* --subnet --vnet-name --action", help: "Add a firewall rule.", handler: nr_add },
    Command { path: "storage account network-rule remove", spec: "--resource-group/-g --account-name/-n! --ip-address* --subnet --vnet-name", help: "Remove a firewall rule.", handler: nr_remove },
    Command { path: "network watcher packet-capture create", spec: "--resource-group/-g! --vm! --name/-n! --storage-account --storage-path --file-path --time-limit --capture-size --capture-limit --filters --target-type --no-wait?", help: "Start tcpdump in the VM; the pcap lands in the storage account.", handler: super::capture::pc_create },
    Command { path: "network watcher packet-capture show", spec: "--location/-l! --name/-n!", help: "A packet capture.", handler: super::capture::pc_show },
    Command { path: "network watcher packet-capture show-status", spec: "--location/-l! --name/-n!", help: "Status of a packet capture.", handler: super::capture::pc_status },
    Command { path: "network watcher packet-capture stop", spec: "--location/-l! --name/-n!", help: "Stop a packet capture (uploads the pcap).", handler: super::capture::pc_stop },
    Command { path: "network watcher packet-capture delete", spec: "--location/-l! --name/-n!", help: "Delete a packet capture.", handler: super::capture::pc_delete },
    Command { path: "network watcher packet-capture list", spec: "--location/-l!", help: "Packet captures.", handler: super::capture::pc_list },
    Command { path: "storage blob upload", spec: "--account-name --container-name/-c! --name/-n! --file/-f! --auth-mode --overwrite? --account-key --connection-string", help: "Upload a file as a blob.", handler: super::capture::blob_upload },
    Command { path: "storage blob download", spec: "--account-name --container-name/-c! --name/-n! --file/-f! --auth-mode --account-key --connection-string", help: "Download a blob.", handler: super::capture::blob_download },
    Command { path: "storage blob list", spec: "--account-name --container-name/-c! --prefix --num-results --auth-mode --account-key --connection-string", help: "Blobs of a container.", handler: super::capture::blob_list },
    Command { path: "storage blob show", spec: "--account-name --container-name/-c! --name/-n! --auth-mode --account-key --connection-string", help: "A blob's properties.", handler: super::capture::blob_show },
    Command { path: "storage blob delete", spec: "--account-name --container-name/-c! --name/-n! --auth-mode --account-key --connection-string", help: "Delete a blob.", handler: super::capture::blob_delete },
    Command { path: "rest", spec: "--method/-m --url/--uri/-u! --body/-b --headers* --uri-parameters/--url-parameters* --resource --skip-authorization-header?", help: "ARM GET/PUT of lab resources (subnet PUT changes associations).", handler: rest },
];

/// The outcome of resolving the command words.
pub enum Resolved {
    /// A group's (or the root's) help text: az prints it and exits 0.
    Help(String),
    /// A command with its parsed options.
    Command(&'static Command, Parsed),
}

fn words(path: &str) -> Vec<&str> {
    path.split(' ').collect()
}

/// Finds the command named by the leading words of `argv` and parses its options.
pub fn resolve(argv: &[String]) -> Result<Resolved, AzError> {
    let n_words = argv.iter().take_while(|t| !t.starts_with('-')).count();
    let w: Vec<&str> = argv[..n_words].iter().map(String::as_str).collect();
    let best = COMMANDS
        .iter()
        .filter(|c| {
            let p = words(c.path);
            p.len() <= w.len() && p[..] == w[..p.len()]
        })
        .max_by_key(|c| words(c.path).len());
    if let Some(c) = best {
        let k = words(c.path).len();
        let p = parse_options(&argv[k..], &parse_spec(c.spec))?;
        return Ok(Resolved::Command(c, p));
    }
    // longest known group prefix
    let is_group = |g: &[&str]| {
        COMMANDS.iter().any(|c| {
            let p = words(c.path);
            p.len() > g.len() && p[..g.len()] == g[..]
        })
    };
    let mut depth = 0;
    while depth < w.len() && is_group(&w[..=depth]) {
        depth += 1;
    }
    if depth < w.len() {
        return Err(AzError::Usage(format!(
            "'{}' is misspelled or not recognized by the system.",
            w[depth]
        )));
    }
    Ok(Resolved::Help(group_help(&w[..depth])))
}

fn group_help(g: &[&str]) -> String {
    let mut s = format!(
        "\nGroup\n    az{}{}\n\nCommands (netlab az):\n",
        if g.is_empty() { "" } else { " " },
        g.join(" ")
    );
    for c in COMMANDS {
        let p = words(c.path);
        if p.len() > g.len() && p[..g.len()] == g[..] {
            s.push_str(&format!("    {:<45} : {}\n", c.path, c.help));
        }
    }
    s
}

/// az's table transformer of a command (applied to `-o table` without `--query`), as in
/// azure-cli's `network/_format.py`.
pub fn table_override(path: &str, v: &Value) -> Option<String> {
    let s = |x: &Value| x.as_str().unwrap_or("").to_string();
    let join = |x: &Value| {
        x.as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let items = v.get("value")?.as_array()?;
    match path {
        "network nic show-effective-route-table" => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|r| {
                    vec![
                        s(&r["source"]),
                        s(&r["state"]),
                        join(&r["addressPrefix"]),
                        s(&r["nextHopType"]),
                        join(&r["nextHopIpAddress"]),
                    ]
                })
                .collect();
            Some(super::output::table_rows(
                &[
                    "Source",
                    "State",
                    "Address Prefix",
                    "Next Hop Type",
                    "Next Hop IP",
                ],
                &rows,
            ))
        }
        "network nic list-effective-nsg" => {
            let name = |x: &Value| {
                x.as_str()
                    .map(|id| super::args_last_segment(id).to_string())
                    .unwrap_or_else(|| "-".to_string())
            };
            let mut rows = Vec::new();
            for g in items {
                let a = &g["association"];
                let nic = name(&a["networkInterface"]["id"]);
                let subnet = name(&a["subnet"]["id"]);
                let nsg = name(&g["networkSecurityGroup"]["id"]);
                let mut first = true;
                for r in g["effectiveSecurityRules"].as_array().into_iter().flatten() {
                    let n = |x: &str| {
                        if first {
                            x.to_string()
                        } else {
                            " ".to_string()
                        }
                    };
                    rows.push(vec![
                        n(&nic),
                        n(&subnet),
                        n(&nsg),
                        s(&r["name"]),
                        s(&r["protocol"]),
                        s(&r["direction"]),
                        s(&r["access"]),
                    ]);
                    first = false;
                }
            }
            Some(super::output::table_rows(
                &[
                    "NIC",
                    "Subnet",
                    "NSG",
                    "Rule Name",
                    "Protocol",
                    "Direction",
                    "Access",
                ],
                &rows,
            ))
        }
        _ => None,
    }
}

/// `--help` of a command: its options.
pub fn command_help(c: &Command) -> String {
    let mut s = format!("\nCommand\n    az {} : {}\n\nArguments\n", c.path, c.help);
    for o in parse_spec(c.spec) {
        s.push_str(&format!(
            "    {:<40}{}{}\n",
            o.display(),
            if o.required { " [Required]" } else { "" },
            if o.multi {
                " (space-separated values)"
            } else {
                ""
            }
        ));
    }
    s.push_str("\nGlobal Arguments\n    --debug --help -h --only-show-errors --output -o --query --subscription --verbose\n");
    s
}

// ---------------------------------------------------------------------------------------
// helpers

impl Ctx {
    fn t(&self) -> &Topology {
        self.lab.topology()
    }

    fn check_rg(&self, p: &Parsed) -> Result<(), AzError> {
        if let Some(rg) = p.get("--resource-group") {
            if !rg.eq_ignore_ascii_case(&self.t().resource_group) {
                return Err(AzError::NotFound {
                    code: "ResourceGroupNotFound".into(),
                    message: format!("Resource group '{rg}' could not be found."),
                });
            }
        }
        Ok(())
    }

    fn not_found(&self, p: &Parsed, kind: &str, name: &str) -> AzError {
        AzError::NotFound {
            code: "ResourceNotFound".into(),
            message: format!(
                "The Resource '{kind}/{name}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                p.get("--resource-group").unwrap_or(&self.t().resource_group)
            ),
        }
    }

    fn child_not_found(&self, id: String) -> AzError {
        AzError::NotFound {
            code: "NotFound".into(),
            message: format!("Resource {id} not found."),
        }
    }

    fn vm(&self, p: &Parsed, name: &str) -> Result<Vm, AzError> {
        self.t()
            .vms
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| self.not_found(p, "Microsoft.Compute/virtualMachines", name))
    }

    fn vm_by_nic(&self, p: &Parsed, nic: &str) -> Result<Vm, AzError> {
        self.t()
            .vms
            .iter()
            .find(|v| shapes::nic_name(&v.name).eq_ignore_ascii_case(nic))
            .cloned()
            .ok_or_else(|| self.not_found(p, "Microsoft.Network/networkInterfaces", nic))
    }

    fn facts(&self, vm: &Vm) -> VmFacts {
        let rec = self.lab.st.vms.iter().find(|r| r.name == vm.name);
        let ns = rec.map(|r| r.ns.clone()).unwrap_or_default();
        let running = !ns.is_empty() && Path::new("/run/netns").join(&ns).exists();
        let mac = if running {
            crate::sys::run("ip", &["-n", &ns, "-o", "link", "show", "dev", "eth0"])
                .ok()
                .and_then(|o| {
                    let w: Vec<&str> = o.split_whitespace().collect();
                    w.iter()
                        .position(|x| *x == "link/ether")
                        .and_then(|i| w.get(i + 1))
                        .map(|m| m.to_uppercase().replace(':', "-"))
                })
        } else {
            None
        };
        VmFacts {
            public_ip: rec.map(|r| r.public_ip.to_string()).unwrap_or_default(),
            mac,
            running,
        }
    }

    fn vnet_check(&self, p: &Parsed, vnet: &str) -> Result<(), AzError> {
        if !vnet.eq_ignore_ascii_case(&self.t().vnet.name) {
            return Err(self.not_found(p, "Microsoft.Network/virtualNetworks", vnet));
        }
        Ok(())
    }

    fn nsg_name(&self, p: &Parsed, name: &str) -> Result<String, AzError> {
        self.t()
            .nsgs
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(name))
            .map(|n| n.name.clone())
            .ok_or_else(|| self.not_found(p, "Microsoft.Network/networkSecurityGroups", name))
    }

    fn rt_name(&self, p: &Parsed, name: &str) -> Result<String, AzError> {
        self.t()
            .route_tables
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(name))
            .map(|n| n.name.clone())
            .ok_or_else(|| self.not_found(p, "Microsoft.Network/routeTables", name))
    }

    fn sa_name(&self, name: &str) -> Result<String, AzError> {
        self.t()
            .storage_accounts
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(name))
            .map(|n| n.name.clone())
            .ok_or_else(|| {
                AzError::Failed(format!(
                    "The Resource 'Microsoft.Storage/storageAccounts/{name}' under resource group '{}' was not found.",
                    self.t().resource_group
                ))
            })
    }

    fn commit(&mut self, t: Topology) -> Result<(), AzError> {
        self.lab.apply_topology(t).map_err(AzError::from)
    }
}

fn last_segment(v: &str) -> &str {
    v.trim_end_matches('/').rsplit('/').next().unwrap_or(v)
}

fn choice(
    p: &Parsed,
    opt: &str,
    choices: &[&'static str],
) -> Result<Option<&'static str>, AzError> {
    match p.get(opt) {
        None => Ok(None),
        Some(v) => choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(v))
            .copied()
            .map(Some)
            .ok_or_else(|| {
                AzError::Usage(format!(
                    "argument {opt}: invalid choice: '{v}' (choose from {})",
                    choices
                        .iter()
                        .map(|c| format!("'{c}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
    }
}

fn list_json<T>(items: &[T], f: impl Fn(&T) -> Value) -> Out {
    Ok(Some(Value::Array(items.iter().map(f).collect())))
}

// ---------------------------------------------------------------------------------------
// account, group, vm

fn account_show(c: &mut Ctx, _p: &Parsed) -> Out {
    let t = c.t();
    Ok(Some(json!({
        "environmentName": "AzureCloud",
        "homeTenantId": "00000000-0000-0000-0000-000000000000",
        "id": t.subscription_id,
        "isDefault": true,
        "managedByTenants": [],
        "name": "netlab",
        "state": "Enabled",
        "tenantId": "00000000-0000-0000-0000-000000000000",
        "user": {"name": "netlab", "type": "user"},
    })))
}

fn group_show(c: &mut Ctx, p: &Parsed) -> Out {
    let name = p.req("--name");
    let t = c.t();
    if !name.eq_ignore_ascii_case(&t.resource_group) {
        return Err(AzError::NotFound {
            code: "ResourceGroupNotFound".into(),
            message: format!("Resource group '{name}' could not be found."),
        });
    }
    Ok(Some(json!({
        "id": shapes::rg_id(t),
        "location": t.location,
        "managedBy": null,
        "name": t.resource_group,
        "properties": {"provisioningState": "Succeeded"},
        "tags": null,
        "type": "Microsoft.Resources/resourceGroups",
    })))
}

fn vm_show(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let vm = c.vm(p, p.req("--name"))?;
    Ok(Some(shapes::vm_json(
        c.t(),
        &vm,
        &c.facts(&vm),
        p.has("--show-details"),
    )))
}

fn vm_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let d = p.has("--show-details");
    list_json(&c.t().vms, |v| shapes::vm_json(c.t(), v, &c.facts(v), d))
}

fn vm_list_ip(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let vms: Vec<Vm> = match p.get("--name") {
        Some(n) => c
            .t()
            .vms
            .iter()
            .filter(|v| v.name.eq_ignore_ascii_case(n))
            .cloned()
            .collect(),
        None => c.t().vms.clone(),
    };
    list_json(&vms, |v| shapes::vm_ip_json(c.t(), v, &c.facts(v)))
}

fn vm_nic_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let vm = c.vm(p, p.req("--vm-name"))?;
    let t = c.t();
    Ok(Some(json!([{
        "id": shapes::nic_id(t, &vm.name),
        "primary": true,
        "resourceGroup": t.resource_group,
    }])))
}

/// Every lab VM can capture packets (tcpdump in its namespace), so each reports the Network
/// Watcher agent extension as Azure lists it for a Linux VM.
fn vm_extension_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let vm = c.vm(p, p.req("--vm-name"))?;
    let t = c.t();
    let vm_id = shapes::vm_id(t, &vm.name);
    Ok(Some(json!([{
        "autoUpgradeMinorVersion": true,
        "id": format!("{vm_id}/extensions/AzureNetworkWatcherExtension"),
        "location": t.location,
        "name": "AzureNetworkWatcherExtension",
        "provisioningState": "Succeeded",
        "publisher": "Microsoft.Azure.NetworkWatcher",
        "resourceGroup": t.resource_group,
        "type": "Microsoft.Compute/virtualMachines/extensions",
        "typeHandlerVersion": "1.4",
        "typePropertiesType": "NetworkWatcherAgentLinux",
    }])))
}

fn vm_instance_view(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let vm = c.vm(p, p.req("--name"))?;
    Ok(Some(shapes::vm_instance_view_json(
        c.t(),
        &vm,
        &c.facts(&vm),
    )))
}

/// Azure keeps about the last 4096 bytes of each stream of a run command.
pub const RUN_COMMAND_LIMIT: usize = 4096;

/// Keeps the last `limit` bytes of `s` (cut at a character boundary).
pub fn keep_tail(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut start = s.len() - limit;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Azure's run-command envelope around a script's stdout and stderr.
pub fn run_command_envelope(stdout: &str, stderr: &str) -> Value {
    json!({"value": [{
        "code": "ProvisioningState/succeeded",
        "displayStatus": "Provisioning succeeded",
        "level": "Info",
        "message": format!(
            "Enable succeeded: \n[stdout]\n{}\n[stderr]\n{}",
            keep_tail(stdout, RUN_COMMAND_LIMIT),
            keep_tail(stderr, RUN_COMMAND_LIMIT)
        ),
        "time": null,
    }]})
}

fn vm_run_command(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let vm = c.vm(p, p.req("--name"))?;
    let id = p.req("--command-id");
    if !id.eq_ignore_ascii_case("RunShellScript") {
        return Err(AzError::Failed(format!(
            "(BadRequest) The command id '{id}' is not supported by netlab; use RunShellScript."
        )));
    }
    let Some(scripts) = p.list("--scripts") else {
        return Err(AzError::Failed(
            "(BadRequest) RunShellScript needs --scripts (the lines of the script).".into(),
        ));
    };
    let ns = c.lab.vm(&vm.name).map_err(AzError::from)?.ns.clone();
    let script = scripts.join("\n");
    let mut cmd = std::process::Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &ns,
        "/bin/sh",
        "-c",
        &script,
        "run-command",
    ]);
    if let Some(params) = p.list("--parameters") {
        cmd.args(params);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| AzError::Failed(format!("cannot run the script in {ns}: {e}")))?;
    Ok(Some(run_command_envelope(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )))
}

// ---------------------------------------------------------------------------------------
// nic

fn nic_show(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let vm = c.vm_by_nic(p, p.req("--name"))?;
    Ok(Some(shapes::nic_json(c.t(), &vm, &c.facts(&vm))))
}

fn nic_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    list_json(&c.t().vms, |v| shapes::nic_json(c.t(), v, &c.facts(v)))
}

fn nic_effective_nsg(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let vm = c.vm_by_nic(p, p.req("--name"))?;
    Ok(Some(shapes::effective_nsg_json(c.t(), &vm)))
}

fn nic_effective_routes(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let vm = c.vm_by_nic(p, p.req("--name"))?;
    Ok(Some(shapes::effective_routes_json(c.t(), &vm)))
}

// ---------------------------------------------------------------------------------------
// nsg

fn nsg_show(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.nsg_name(p, p.req("--name"))?;
    let t = c.t();
    Ok(Some(shapes::nsg_json(t, t.nsg(&n).expect("checked"))))
}

fn nsg_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    list_json(&c.t().nsgs, |n| shapes::nsg_json(c.t(), n))
}

fn nsg_create(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let name = p.req("--name").to_string();
    let mut t = c.t().clone();
    if !t.nsgs.iter().any(|n| n.name.eq_ignore_ascii_case(&name)) {
        t.nsgs.push(crate::scenario::Nsg {
            name: name.clone(),
            rules: vec![],
        });
        c.commit(t)?;
    }
    let n = c.nsg_name(p, &name)?;
    let t = c.t();
    Ok(Some(
        json!({"NewNSG": shapes::nsg_json(t, t.nsg(&n).expect("exists"))}),
    ))
}

fn nsg_delete(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let Some(n) = c
        .t()
        .nsgs
        .iter()
        .find(|n| n.name.eq_ignore_ascii_case(p.req("--name")))
        .map(|n| n.name.clone())
    else {
        // ARM DELETE of a missing resource succeeds (204)
        return Ok(None);
    };
    let t0 = c.t();
    let mut users: Vec<String> = t0
        .vnet
        .subnets
        .iter()
        .filter(|s| s.nsg.as_deref() == Some(&n))
        .map(|s| shapes::subnet_id(t0, &s.name))
        .collect();
    users.extend(
        t0.vms
            .iter()
            .filter(|v| v.nsg.as_deref() == Some(&n))
            .map(|v| shapes::nic_id(t0, &v.name)),
    );
    if !users.is_empty() {
        return Err(AzError::Failed(format!(
            "(InUseNetworkSecurityGroupCannotBeDeleted) Network security group {} cannot be deleted because it is in use by the following resources: {}. In order to delete the Network security group, remove the association with the resource(s).",
            shapes::nsg_id(t0, &n),
            users.join(", ")
        )));
    }
    let mut t = t0.clone();
    t.nsgs.retain(|x| x.name != n);
    c.commit(t)?;
    Ok(None)
}

fn rule_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.nsg_name(p, p.req("--nsg-name"))?;
    let t = c.t();
    let nsg = t.nsg(&n).expect("checked");
    let mut v: Vec<Value> = nsg
        .rules
        .iter()
        .map(|r| shapes::rule_json(t, &n, r, false))
        .collect();
    if p.has("--include-default") {
        for inbound in [true, false] {
            v.extend(
                crate::nsg::default_rules(inbound)
                    .iter()
                    .map(|r| shapes::rule_json(t, &n, r, true)),
            );
        }
    }
    Ok(Some(Value::Array(v)))
}

fn find_rule(c: &Ctx, p: &Parsed, nsg: &str) -> Result<NsgRule, AzError> {
    let name = p.req("--name");
    let t = c.t();
    t.nsg(nsg)
        .and_then(|n| n.rules.iter().find(|r| r.name.eq_ignore_ascii_case(name)))
        .cloned()
        .ok_or_else(|| {
            c.child_not_found(format!("{}/securityRules/{name}", shapes::nsg_id(t, nsg)))
        })
}

fn rule_show(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.nsg_name(p, p.req("--nsg-name"))?;
    let r = find_rule(c, p, &n)?;
    Ok(Some(shapes::rule_json(c.t(), &n, &r, false)))
}

fn set_pair(one: &mut Option<String>, many: &mut Vec<String>, vals: &[String]) {
    if vals.len() == 1 {
        *one = Some(vals[0].clone());
        many.clear();
    } else {
        *one = None;
        *many = vals.to_vec();
    }
}

fn apply_rule_options(r: &mut NsgRule, p: &Parsed) -> Result<(), AzError> {
    if let Some(v) = p.get("--priority") {
        r.priority = v.parse().map_err(|_| {
            AzError::Usage(format!("argument --priority: invalid int value: '{v}'"))
        })?;
    }
    if let Some(a) = choice(p, "--access", &["Allow", "Deny"])? {
        r.access = a.into();
    }
    if let Some(d) = choice(p, "--direction", &["Inbound", "Outbound"])? {
        r.direction = d.into();
    }
    if let Some(pr) = choice(p, "--protocol", &["*", "Ah", "Esp", "Icmp", "Tcp", "Udp"])? {
        r.protocol = pr.into();
    }
    if let Some(v) = p.list("--source-address-prefixes") {
        set_pair(
            &mut r.source_address_prefix,
            &mut r.source_address_prefixes,
            v,
        );
    }
    if let Some(v) = p.list("--source-port-ranges") {
        set_pair(&mut r.source_port_range, &mut r.source_port_ranges, v);
    }
    if let Some(v) = p.list("--destination-address-prefixes") {
        set_pair(
            &mut r.destination_address_prefix,
            &mut r.destination_address_prefixes,
            v,
        );
    }
    if let Some(v) = p.list("--destination-port-ranges") {
        set_pair(
            &mut r.destination_port_range,
            &mut r.destination_port_ranges,
            v,
        );
    }
    if let Some(d) = p.get("--description") {
        r.description = d.to_string();
    }
    Ok(())
}

fn put_rule(c: &mut Ctx, nsg: &str, r: NsgRule) -> Out {
    crate::scenario::validate_nsg_rule(nsg, &r)?;
    let mut t = c.t().clone();
    let n = t
        .nsgs
        .iter_mut()
        .find(|x| x.name == nsg)
        .expect("NSG checked");
    n.rules.retain(|x| !x.name.eq_ignore_ascii_case(&r.name));
    n.rules.push(r.clone());
    crate::scenario::validate_nsg(n)?;
    c.commit(t)?;
    Ok(Some(shapes::rule_json(c.t(), nsg, &r, false)))
}

fn rule_create(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.nsg_name(p, p.req("--nsg-name"))?;
    let mut r = NsgRule {
        name: p.req("--name").to_string(),
        priority: 0,
        direction: "Inbound".into(),
        access: "Allow".into(),
        protocol: "*".into(),
        source_address_prefix: Some("*".into()),
        source_port_range: Some("*".into()),
        destination_address_prefix: Some("*".into()),
        destination_port_range: Some("80".into()),
        ..Default::default()
    };
    apply_rule_options(&mut r, p)?;
    put_rule(c, &n, r)
}

fn rule_update(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.nsg_name(p, p.req("--nsg-name"))?;
    let mut r = find_rule(c, p, &n)?;
    apply_rule_options(&mut r, p)?;
    put_rule(c, &n, r)
}

fn rule_delete(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.nsg_name(p, p.req("--nsg-name"))?;
    let name = p.req("--name");
    let mut t = c.t().clone();
    let nsg = t
        .nsgs
        .iter_mut()
        .find(|x| x.name == n)
        .expect("NSG checked");
    let before = nsg.rules.len();
    nsg.rules.retain(|x| !x.name.eq_ignore_ascii_case(name));
    if nsg.rules.len() != before {
        c.commit(t)?;
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// route tables

fn rt_show(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.rt_name(p, p.req("--name"))?;
    let t = c.t();
    let rt = t
        .route_tables
        .iter()
        .find(|r| r.name == n)
        .expect("checked");
    Ok(Some(shapes::route_table_json(t, rt)))
}

fn rt_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    list_json(&c.t().route_tables, |r| shapes::route_table_json(c.t(), r))
}

fn rt_create(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let name = p.req("--name").to_string();
    if !c
        .t()
        .route_tables
        .iter()
        .any(|r| r.name.eq_ignore_ascii_case(&name))
    {
        let mut t = c.t().clone();
        t.route_tables.push(RouteTable {
            name: name.clone(),
            routes: vec![],
        });
        c.commit(t)?;
    }
    let n = c.rt_name(p, &name)?;
    let t = c.t();
    let rt = t.route_tables.iter().find(|r| r.name == n).expect("exists");
    Ok(Some(shapes::route_table_json(t, rt)))
}

fn rt_delete(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let Ok(n) = c.rt_name(p, p.req("--name")) else {
        return Ok(None);
    };
    let t0 = c.t();
    let users: Vec<String> = t0
        .vnet
        .subnets
        .iter()
        .filter(|s| s.route_table.as_deref() == Some(&n))
        .map(|s| shapes::subnet_id(t0, &s.name))
        .collect();
    if !users.is_empty() {
        return Err(AzError::Failed(format!(
            "(InUseRouteTableCannotBeDeleted) Route table {} is in use and cannot be deleted. In order to delete the route table, disassociate it from: {}.",
            shapes::rt_id(t0, &n),
            users.join(", ")
        )));
    }
    let mut t = t0.clone();
    t.route_tables.retain(|r| r.name != n);
    c.commit(t)?;
    Ok(None)
}

fn route_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.rt_name(p, p.req("--route-table-name"))?;
    let t = c.t();
    let rt = t
        .route_tables
        .iter()
        .find(|r| r.name == n)
        .expect("checked");
    list_json(&rt.routes, |r| shapes::route_json(t, &n, r))
}

fn route_show(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.rt_name(p, p.req("--route-table-name"))?;
    let name = p.req("--name");
    let t = c.t();
    let rt = t
        .route_tables
        .iter()
        .find(|r| r.name == n)
        .expect("checked");
    let r = rt
        .routes
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| c.child_not_found(format!("{}/routes/{name}", shapes::rt_id(t, &n))))?;
    Ok(Some(shapes::route_json(t, &n, r)))
}

fn route_create(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.rt_name(p, p.req("--route-table-name"))?;
    let hop = choice(
        p,
        "--next-hop-type",
        &[
            "Internet",
            "None",
            "VirtualAppliance",
            "VirtualNetworkGateway",
            "VnetLocal",
        ],
    )?
    .expect("required");
    let ip = p.get("--next-hop-ip-address").map(str::to_string);
    if hop == "VirtualAppliance" && ip.is_none() {
        return Err(AzError::Failed(
            "(InvalidNextHopIpAddress) A route with next hop type VirtualAppliance needs --next-hop-ip-address.".into(),
        ));
    }
    if hop != "VirtualAppliance" && ip.is_some() {
        return Err(AzError::Failed(format!(
            "(NextHopIpAddressNotAllowed) A next hop IP address is allowed only with next hop type VirtualAppliance, not {hop}."
        )));
    }
    let r = Route {
        name: p.req("--name").to_string(),
        address_prefix: p.req("--address-prefix").to_string(),
        next_hop_type: hop.into(),
        next_hop_ip_address: ip,
    };
    let mut t = c.t().clone();
    let rt = t
        .route_tables
        .iter_mut()
        .find(|x| x.name == n)
        .expect("checked");
    rt.routes.retain(|x| !x.name.eq_ignore_ascii_case(&r.name));
    rt.routes.push(r.clone());
    c.commit(t)?;
    Ok(Some(shapes::route_json(c.t(), &n, &r)))
}

fn route_delete(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.rt_name(p, p.req("--route-table-name"))?;
    let name = p.req("--name");
    let mut t = c.t().clone();
    let rt = t
        .route_tables
        .iter_mut()
        .find(|x| x.name == n)
        .expect("checked");
    let before = rt.routes.len();
    rt.routes.retain(|x| !x.name.eq_ignore_ascii_case(name));
    if rt.routes.len() != before {
        c.commit(t)?;
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// vnet, subnet

fn vnet_show(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    c.vnet_check(p, p.req("--name"))?;
    Ok(Some(shapes::vnet_json(c.t())))
}

fn vnet_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    Ok(Some(json!([shapes::vnet_json(c.t())])))
}

fn subnet_idx(c: &Ctx, _p: &Parsed, name: &str) -> Result<usize, AzError> {
    let t = c.t();
    t.vnet
        .subnets
        .iter()
        .position(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| c.child_not_found(format!("{}/subnets/{name}", shapes::vnet_id(t))))
}

fn subnet_show(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    c.vnet_check(p, p.req("--vnet-name"))?;
    let i = subnet_idx(c, p, p.req("--name"))?;
    let t = c.t();
    Ok(Some(shapes::subnet_json(t, &t.vnet.subnets[i])))
}

fn subnet_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    c.vnet_check(p, p.req("--vnet-name"))?;
    list_json(&c.t().vnet.subnets, |s| shapes::subnet_json(c.t(), s))
}

fn subnet_update(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    c.vnet_check(p, p.req("--vnet-name"))?;
    let i = subnet_idx(c, p, p.req("--name"))?;
    let mut t = c.t().clone();
    if let Some(v) = p.get("--network-security-group") {
        t.vnet.subnets[i].nsg = if v.is_empty() || v.eq_ignore_ascii_case("null") {
            None
        } else {
            Some(c.nsg_name(p, last_segment(v))?)
        };
    }
    if let Some(v) = p.get("--route-table") {
        t.vnet.subnets[i].route_table = if v.is_empty() || v.eq_ignore_ascii_case("null") {
            None
        } else {
            Some(c.rt_name(p, last_segment(v))?)
        };
    }
    if let Some(v) = p.list("--service-endpoints") {
        let v: Vec<String> = v.iter().filter(|s| !s.is_empty()).cloned().collect();
        t.vnet.subnets[i].service_endpoints = v;
    }
    if let Some(r) = p.list("--remove") {
        match r[0].to_ascii_lowercase().as_str() {
            "networksecuritygroup" => t.vnet.subnets[i].nsg = None,
            "routetable" => t.vnet.subnets[i].route_table = None,
            "serviceendpoints" => match r.get(1).map(|x| x.parse::<usize>()) {
                None => t.vnet.subnets[i].service_endpoints.clear(),
                Some(Ok(k)) if k < t.vnet.subnets[i].service_endpoints.len() => {
                    t.vnet.subnets[i].service_endpoints.remove(k);
                }
                Some(_) => {
                    return Err(AzError::Failed(format!(
                        "index '{}' doesn't exist on serviceEndpoints",
                        r[1]
                    )))
                }
            },
            other => {
                return Err(AzError::Failed(format!(
                    "Couldn't find '{other}' in ''. netlab supports --remove networkSecurityGroup, routeTable and serviceEndpoints [INDEX]."
                )))
            }
        }
    }
    c.commit(t)?;
    let t = c.t();
    Ok(Some(shapes::subnet_json(t, &t.vnet.subnets[i])))
}

// ---------------------------------------------------------------------------------------
// storage

fn sa_show(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.sa_name(p.req("--name"))?;
    let t = c.t();
    let a = t
        .storage_accounts
        .iter()
        .find(|a| a.name == n)
        .expect("checked");
    Ok(Some(shapes::storage_account_json(t, a)))
}

fn sa_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    list_json(&c.t().storage_accounts, |a| {
        shapes::storage_account_json(c.t(), a)
    })
}

fn sa_update(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.sa_name(p.req("--name"))?;
    if let Some(b) = p.list("--bypass") {
        if b.len() != 1 || b[0] != "AzureServices" {
            return Err(AzError::Failed(
                "netlab storage accounts support only --bypass AzureServices (the lab has no other trusted services).".into(),
            ));
        }
    }
    if let Some(a) = choice(p, "--default-action", &["Allow", "Deny"])? {
        let mut t = c.t().clone();
        t.storage_accounts
            .iter_mut()
            .find(|x| x.name == n)
            .expect("checked")
            .default_action = a.into();
        c.commit(t)?;
    }
    let t = c.t();
    let a = t
        .storage_accounts
        .iter()
        .find(|a| a.name == n)
        .expect("checked");
    Ok(Some(shapes::storage_account_json(t, a)))
}

fn nr_list(c: &mut Ctx, p: &Parsed) -> Out {
    c.check_rg(p)?;
    let n = c.sa_name(p.req("--account-name"))?;
    let t = c.t();
    let a = t
        .storage_accounts
        .iter()
        .find(|a| a.name == n)
        .expect("checked");
    let set = shapes::network_rule_set_json(t, a);
    Ok(Some(json!({
        "ipRules": set["ipRules"],
        "resourceAccessRules": set["resourceAccessRules"],
        "virtualNetworkRules": set["virtualNetworkRules"],
    })))
}

/// The `vnet/subnet` a `--subnet` (name with `--vnet-name`, or an ARM id) names.
fn rule_subnet(c: &Ctx, p: &Parsed) -> Result<Option<String>, AzError> {
    let Some(s) = p.get("--subnet") else {
        return Ok(None);
    };
    let (vnet, subnet) = if s.contains("/subnets/") {
        let v = s
            .split("/virtualNetworks/")
            .nth(1)
            .and_then(|x| x.split('/').next())
            .unwrap_or("");
        (v.to_string(), last_segment(s).to_string())
    } else {
        match p.get("--vnet-name") {
            Some(v) => (v.to_string(), s.to_string()),
            None => {
                return Err(AzError::Usage(
                    "usage error: --subnet ID | --subnet NAME --vnet-name NAME".into(),
                ))
            }
        }
    };
    let t = c.t();
    if !vnet.eq_ignore_ascii_case(&t.vnet.name) || t.subnet(&subnet).is_none() {
        return Err(AzError::Failed(format!(
            "(SubnetNotFound) Subnet {subnet} of virtual network {vnet} was not found in the lab."
        )));
    }
    Ok(Some(format!("{}/{subnet}", t.vnet.name)))
}

fn same_rule(t: &Topology, stored: &str, want: &str) -> bool {
    let full = if stored.contains('/') {
        stored.to_string()
    } else {
        format!("{}/{stored}", t.vnet.name)
    };
    full.eq_ignore_ascii_case(want)
}

fn nr_change(c: &mut Ctx, p: &Parsed, add: bool) -> Out {
    c.check_rg(p)?;
    let n = c.sa_name(p.req("--account-name"))?;
    let subnet = rule_subnet(c, p)?;
    let ips: Vec<String> = p
        .list("--ip-address")
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    if subnet.is_none() && ips.is_empty() {
        return Err(AzError::Usage(
            "usage error: --subnet ID | --subnet NAME --vnet-name NAME | --ip-address IP".into(),
        ));
    }
    if let Some(a) = p.get("--action") {
        if !a.eq_ignore_ascii_case("Allow") {
            return Err(AzError::Usage(format!(
                "argument --action: invalid choice: '{a}' (choose from 'Allow')"
            )));
        }
    }
    let mut t = c.t().clone();
    let tv = t.clone();
    let a = t
        .storage_accounts
        .iter_mut()
        .find(|x| x.name == n)
        .expect("checked");
    if let Some(s) = &subnet {
        let present = a.vnet_rules.iter().any(|r| same_rule(&tv, r, s));
        if add && !present {
            a.vnet_rules.push(s.clone());
        } else if !add {
            a.vnet_rules.retain(|r| !same_rule(&tv, r, s));
        }
    }
    for ip in &ips {
        if add && !a.ip_rules.contains(ip) {
            a.ip_rules.push(ip.clone());
        } else if !add {
            a.ip_rules.retain(|x| x != ip);
        }
    }
    c.commit(t)?;
    let t = c.t();
    let a = t
        .storage_accounts
        .iter()
        .find(|a| a.name == n)
        .expect("checked");
    Ok(Some(shapes::network_rule_set_json(t, a)))
}

fn nr_add(c: &mut Ctx, p: &Parsed) -> Out {
    nr_change(c, p, true)
}

fn nr_remove(c: &mut Ctx, p: &Parsed) -> Out {
    nr_change(c, p, false)
}

// ---------------------------------------------------------------------------------------
// az rest

/// Turns az's flattened shape back into ARM's wire shape (`properties` nesting), as `az
/// rest` returns it.
pub fn to_arm(v: &Value) -> Value {
    let Value::Object(m) = v else {
        return v.clone();
    };
    let mut top = serde_json::Map::new();
    let mut props = serde_json::Map::new();
    for (k, x) in m {
        match k.as_str() {
            "id" | "name" | "type" | "etag" | "location" | "tags" => {
                top.insert(k.clone(), x.clone());
            }
            "resourceGroup" => {}
            _ => {
                let reference = |o: &serde_json::Map<String, Value>| {
                    o.contains_key("id") && o.keys().all(|k| k == "id" || k == "resourceGroup")
                };
                let x = match x {
                    Value::Array(a) => Value::Array(
                        a.iter()
                            .map(|e| match e {
                                Value::Object(o) if reference(o) => json!({"id": o["id"]}),
                                Value::Object(o) if o.contains_key("id") => to_arm(e),
                                other => other.clone(),
                            })
                            .collect(),
                    ),
                    Value::Object(o) if reference(o) => json!({"id": o["id"]}),
                    other => other.clone(),
                };
                props.insert(k.clone(), x);
            }
        }
    }
    top.insert("properties".into(), Value::Object(props));
    Value::Object(top)
}

fn rest(c: &mut Ctx, p: &Parsed) -> Out {
    let method = p.get("--method").unwrap_or("get").to_ascii_lowercase();
    let url = p.req("--url");
    let path = url
        .trim_start_matches("https://management.azure.com")
        .split('?')
        .next()
        .unwrap_or("");
    let t = c.t().clone();
    let base = shapes::rg_id(&t);
    let Some(rest) = path
        .get(..base.len())
        .filter(|b| b.eq_ignore_ascii_case(&base))
        .map(|_| &path[base.len()..])
    else {
        return Err(AzError::Failed(format!(
            "(NotSupported) netlab az rest serves only resources of resource group {base}; got {url}"
        )));
    };
    let seg: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let lower: Vec<String> = seg.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let fake = Parsed::default();
    let body: Option<Value> = match p.get("--body") {
        None => None,
        Some(b) => {
            let text = match b.strip_prefix('@') {
                Some(f) => std::fs::read_to_string(f)
                    .map_err(|e| AzError::Failed(format!("cannot read the body file {f}: {e}")))?,
                None => b.to_string(),
            };
            Some(
                serde_json::from_str(&text).map_err(|e| {
                    AzError::Failed(format!("the request body is not valid JSON: {e}"))
                })?,
            )
        }
    };
    match (method.as_str(), &l[..]) {
        ("get", ["providers", "microsoft.network", "virtualnetworks", v, "subnets", s]) => {
            c.vnet_check(&fake, v)?;
            let i = subnet_idx(c, &fake, s)?;
            Ok(Some(to_arm(&shapes::subnet_json(&t, &t.vnet.subnets[i]))))
        }
        ("put", ["providers", "microsoft.network", "virtualnetworks", v, "subnets", s]) => {
            c.vnet_check(&fake, v)?;
            let i = subnet_idx(c, &fake, s)?;
            let Some(b) = body else {
                return Err(AzError::Failed(
                    "(InvalidRequestContent) A subnet PUT needs --body with the subnet's properties.".into(),
                ));
            };
            let props = b.get("properties").cloned().unwrap_or(json!({}));
            let mut nt = t.clone();
            let sub = &mut nt.vnet.subnets[i];
            if let Some(pfx) = props.get("addressPrefix").and_then(Value::as_str) {
                if pfx != sub.address_prefix {
                    return Err(AzError::Failed(format!(
                        "(InUseSubnetCannotBeUpdated) netlab cannot change the address prefix of subnet {} ({} → {pfx}).",
                        sub.name, sub.address_prefix
                    )));
                }
            }
            let id_of = |k: &str| {
                props
                    .get(k)
                    .and_then(|x| x.get("id"))
                    .and_then(Value::as_str)
                    .map(|x| last_segment(x).to_string())
            };
            sub.nsg = match id_of("networkSecurityGroup") {
                Some(n) => Some(c.nsg_name(&fake, &n)?),
                None => None,
            };
            sub.route_table = match id_of("routeTable") {
                Some(n) => Some(c.rt_name(&fake, &n)?),
                None => None,
            };
            sub.service_endpoints = props
                .get("serviceEndpoints")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.get("service").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            c.commit(nt)?;
            let t = c.t();
            Ok(Some(to_arm(&shapes::subnet_json(t, &t.vnet.subnets[i]))))
        }
        ("get", ["providers", "microsoft.network", "virtualnetworks", v]) => {
            c.vnet_check(&fake, v)?;
            Ok(Some(to_arm(&shapes::vnet_json(&t))))
        }
        ("get", ["providers", "microsoft.network", "networksecuritygroups", n]) => {
            let n = c.nsg_name(&fake, n)?;
            Ok(Some(to_arm(&shapes::nsg_json(&t, t.nsg(&n).expect("checked")))))
        }
        ("get", ["providers", "microsoft.network", "routetables", n]) => {
            let n = c.rt_name(&fake, n)?;
            let rt = t.route_tables.iter().find(|r| r.name == n).expect("checked");
            Ok(Some(to_arm(&shapes::route_table_json(&t, rt))))
        }
        _ => Err(AzError::Failed(format!(
            "(NotSupported) netlab az rest supports GET of a subnet, VNet, NSG or route table and PUT of a subnet; not {} {url}",
            method.to_uppercase()
        ))),
    }
}

/// Writes `{run_dir}/bin/az`, a wrapper that runs `netlab az` against this lab, and returns
/// the directory (for `export PATH=<dir>:$PATH`). `down` removes it with the run directory.
pub fn write_wrapper(lab: &Lab, state_dir: &Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = lab.run_dir().join("bin");
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let text = format!(
        "#!/bin/sh\n# az for netlab lab {run}: every command goes to the lab, never to Azure.\nexec {exe} --state-dir {sd} az --prefix {run} \"$@\"\n",
        run = lab.st.run,
        exe = q(&exe.display().to_string()),
        sd = q(&std::fs::canonicalize(state_dir)
            .unwrap_or_else(|_| state_dir.to_path_buf())
            .display()
            .to_string()),
    );
    let path = dir.join("az");
    crate::lab::write_atomic(&path, text.as_bytes())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn usage(v: &[&str]) -> String {
        match resolve(&a(v)) {
            Err(AzError::Usage(m)) => m,
            Err(e) => panic!("not a usage error: {e}"),
            Ok(_) => panic!("resolved: {v:?}"),
        }
    }

    #[test]
    fn unknown_commands_have_az_message() {
        assert_eq!(
            usage(&["network", "foo", "list"]),
            "'foo' is misspelled or not recognized by the system."
        );
        assert_eq!(
            usage(&["bogus"]),
            "'bogus' is misspelled or not recognized by the system."
        );
        assert_eq!(
            usage(&["network", "nsg", "show", "-g", "rg"]),
            "the following arguments are required: --name/-n"
        );
        assert_eq!(
            usage(&["network", "nsg", "list", "extra"]),
            "unrecognized arguments: extra"
        );
    }

    #[test]
    fn groups_print_help_and_commands_resolve() {
        match resolve(&a(&["network", "nsg"])).unwrap() {
            Resolved::Help(h) => assert!(h.contains("network nsg rule create")),
            Resolved::Command(..) => panic!("group resolved as a command"),
        }
        match resolve(&a(&[
            "network",
            "nsg",
            "rule",
            "create",
            "-g",
            "r",
            "--nsg-name",
            "n",
            "-n",
            "x",
            "--priority",
            "100",
            "--destination-port-ranges",
            "80",
            "443",
        ]))
        .unwrap()
        {
            Resolved::Command(c, p) => {
                assert_eq!(c.path, "network nsg rule create");
                assert_eq!(p.list("--destination-port-ranges").unwrap().len(), 2);
            }
            Resolved::Help(_) => panic!("help"),
        }
    }

    #[test]
    fn every_spec_parses_and_paths_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            assert!(seen.insert(c.path), "duplicate {}", c.path);
            for o in parse_spec(c.spec) {
                assert!(o.names[0].starts_with("--"), "{}: {:?}", c.path, o.names);
            }
        }
    }

    #[test]
    fn run_command_truncates_to_last_4096_bytes() {
        let long = format!("{}END", "x".repeat(10_000));
        let v = run_command_envelope(&long, "warn\n");
        let m = v["value"][0]["message"].as_str().unwrap();
        assert!(m.starts_with("Enable succeeded: \n[stdout]\n"));
        let out = m
            .split("\n[stdout]\n")
            .nth(1)
            .unwrap()
            .split("\n[stderr]\n")
            .next()
            .unwrap();
        assert_eq!(out.len(), RUN_COMMAND_LIMIT);
        assert!(out.ends_with("END"));
        assert!(m.ends_with("\n[stderr]\nwarn\n"));
        assert_eq!(keep_tail("é".repeat(3000).as_str(), 4097).len(), 4096);
    }

    #[test]
    fn to_arm_nests_properties() {
        let v = json!({"id": "/x", "name": "n", "addressPrefix": "1", "resourceGroup": "rg",
                       "networkSecurityGroup": {"id": "/n", "resourceGroup": "rg"}});
        let a = to_arm(&v);
        assert_eq!(a["properties"]["addressPrefix"], "1");
        assert_eq!(a["properties"]["networkSecurityGroup"], json!({"id": "/n"}));
        assert!(a.get("resourceGroup").is_none());
    }
}
