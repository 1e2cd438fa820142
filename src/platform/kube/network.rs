//! Network faults on a cluster, mapped onto what clusters already run: a
//! Chaos Mesh `NetworkChaos` (delay, loss, bandwidth; tc in the pods'
//! network namespaces) when its CRD is installed, and a `NetworkPolicy`
//! for a partition (no Chaos Mesh needed, only a CNI that enforces
//! policies). Each object is one fault: named `stormproof-network-ID`,
//! labelled with [`FAULT_LABEL`] (its id) so that every fault stormproof
//! set is found again, and annotated with the fault as set.
//!
//! [`KubePlatform`] plans and sends; the [`Rails`](super::Rails) check the
//! ends' Deployments before anything is sent.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};

use super::deployments::{KubePlatform, api_error};
use super::{FIELD_MANAGER, PART_OF};
use crate::platform::PlatformError;
use crate::platform::network::{ActiveNetworkFault, Direction, Link, Links, NetworkFault, Peer, Toxic};

/// The label every fault object carries; its value is the fault's id.
pub const FAULT_LABEL: &str = "stormproof.io/network-fault";
/// The annotation that holds the fault as set (JSON), to read it back.
const FAULT_ANNOTATION: &str = "stormproof.io/network-fault";
/// Chaos Mesh's API group and version.
pub const CHAOS_MESH: &str = "chaos-mesh.org/v1alpha1";
/// The pods of the broker on a cluster: Strimzi's brokers (the Kafka
/// ci/kind-kafka.yaml deploys), which are no Deployment of the system.
const BROKER_PODS: (&str, &str) = ("strimzi.io/broker-role", "true");

/// The kind of object a fault becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Chaos Mesh's `NetworkChaos`.
    NetworkChaos,
    /// networking.k8s.io/v1 `NetworkPolicy`.
    NetworkPolicy,
}

impl FaultKind {
    fn resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            FaultKind::NetworkChaos => ("chaos-mesh.org", "v1alpha1", "NetworkChaos", "networkchaos"),
            FaultKind::NetworkPolicy => ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
        };
        ApiResource { group: group.into(), version: version.into(), api_version: format!("{group}/{version}"), kind: kind.into(), plural: plural.into() }
    }

    /// `fault` as an object of this kind sets it: a NetworkPolicy has no
    /// duration, so it does not expire (a rollback deletes it).
    fn as_it_acts(self, fault: &NetworkFault) -> NetworkFault {
        match self {
            FaultKind::NetworkChaos => fault.clone(),
            FaultKind::NetworkPolicy => NetworkFault { expires_after: None, ..fault.clone() },
        }
    }

    /// The collection's API path in `namespace`.
    pub fn path(self, namespace: &str) -> String {
        let r = self.resource();
        format!("/apis/{}/namespaces/{namespace}/{}", r.api_version, r.plural)
    }
}

/// A fault as the object that sets it.
#[derive(Debug, Clone)]
pub struct FaultObject {
    /// The fault's id.
    pub id: u64,
    /// Its kind.
    pub kind: FaultKind,
    /// Its name.
    pub name: String,
    /// The whole object.
    pub body: Value,
}

impl FaultObject {
    /// The fault it sets, as set (what a dry run answers).
    pub fn active(&self, fault: &NetworkFault) -> ActiveNetworkFault {
        ActiveNetworkFault { id: self.id, fault: self.kind.as_it_acts(fault), on: links_of(fault), hits: 0 }
    }
}

/// The peers at the ends of a fault's links.
pub fn peers(links: &Links) -> Vec<&Peer> {
    match links {
        Links::Between { between } => between.iter().collect(),
        Links::Ends { from, to } => from.iter().chain(to).collect(),
    }
}

/// The two ends of a fault's links as pod labels: the side that connects
/// (where the rules go) and the side it connects to.
#[derive(Debug, Clone)]
pub struct Ends {
    /// The connecting side.
    pub from: (Peer, BTreeMap<String, String>),
    /// The listening side.
    pub to: (Peer, BTreeMap<String, String>),
}

/// Why a fault cannot be set on a cluster; `None` if it can. Checked
/// before any request.
pub fn unmappable(fault: &NetworkFault) -> Option<String> {
    let local = "run it with --platform local, whose link proxies have every toxic";
    if fault.probability < 1.0 {
        return Some(format!("a probability of {} needs a per-connection choice; Chaos Mesh picks pods or packets, not connections ({local})", fault.probability));
    }
    match &fault.links {
        Links::Ends { from: Some(_), to: Some(_) } => {}
        Links::Between { .. } if fault.direction == Direction::Both => {}
        Links::Between { .. } => return Some(format!("`direction` is relative to the side that connects; with `between` there are two: name `from` and `to` ({local})")),
        Links::Ends { .. } => return Some(format!("a fault on {} needs both ends on a cluster, so that it selects the pods on each side: name `from` and `to` ({local})", fault.links)),
    }
    match fault.toxic {
        Toxic::Reset => Some(format!("Chaos Mesh's NetworkChaos cannot reset connections (it has no RST action; `loss` would stall them instead) — {local}")),
        Toxic::SlowClose { .. } => Some(format!("Chaos Mesh has no slow close — {local}")),
        Toxic::LimitData { .. } => Some(format!("Chaos Mesh has no data limit per connection — {local}")),
        Toxic::Latency { .. } | Toxic::Bandwidth { .. } | Toxic::Blackhole | Toxic::Partition => None,
    }
}

/// The kind of object `toxic` becomes.
pub fn kind_of(toxic: &Toxic) -> FaultKind {
    if *toxic == Toxic::Partition { FaultKind::NetworkPolicy } else { FaultKind::NetworkChaos }
}

/// The object that sets `fault` (id `id`) in `namespace` for `system`.
pub fn render(fault: &NetworkFault, id: u64, ends: &Ends, namespace: &str, system: &str) -> FaultObject {
    let kind = kind_of(&fault.toxic);
    let name = format!("stormproof-network-{id}");
    let resource = kind.resource();
    let metadata = json!({
        "name": name, "namespace": namespace,
        "labels": { FAULT_LABEL: id.to_string(), PART_OF: system, "app.kubernetes.io/managed-by": FIELD_MANAGER },
        "annotations": { FAULT_ANNOTATION: serde_json::to_string(fault).unwrap_or_default() },
    });
    let spec = match kind {
        FaultKind::NetworkChaos => chaos_spec(fault, ends, namespace),
        FaultKind::NetworkPolicy => policy_spec(fault, ends),
    };
    FaultObject { id, kind, name, body: json!({ "apiVersion": resource.api_version, "kind": resource.kind, "metadata": metadata, "spec": spec }) }
}

/// A NetworkChaos on the connecting side's pods towards the other side's.
/// `direction: to` is the packets from the selected pods to the target
/// (upstream), `from` the packets back (downstream). A blackhole is a 100 %
/// loss: data is swallowed and nothing is closed (new connections hang in
/// their handshake rather than being accepted). Its `duration` is the
/// fault's expiry, so Chaos Mesh ends it even if the harness never does.
fn chaos_spec(fault: &NetworkFault, ends: &Ends, namespace: &str) -> Value {
    let pods = |labels: &BTreeMap<String, String>| json!({ "namespaces": [namespace], "labelSelectors": labels });
    let direction = match fault.direction {
        Direction::Upstream => "to",
        Direction::Downstream => "from",
        Direction::Both => "both",
    };
    let mut spec = json!({
        "mode": "all", "selector": pods(&ends.from.1), "direction": direction,
        "target": { "mode": "all", "selector": pods(&ends.to.1) },
    });
    match fault.toxic {
        Toxic::Latency { latency, jitter } => {
            spec["action"] = json!("delay");
            spec["delay"] = json!({ "latency": millis(latency), "jitter": millis(jitter), "correlation": "0" });
        }
        Toxic::Bandwidth { bytes_per_second } => {
            spec["action"] = json!("bandwidth");
            // tc's `bps` is bytes per second; limit and buffer as Chaos Mesh's own example.
            spec["bandwidth"] = json!({ "rate": format!("{bytes_per_second}bps"), "limit": 20_971_520, "buffer": 10_000 });
        }
        _ => {
            spec["action"] = json!("loss");
            spec["loss"] = json!({ "loss": "100", "correlation": "0" });
        }
    }
    if let Some(expiry) = fault.expires_after {
        spec["duration"] = json!(format!("{}s", expiry.as_secs().max(1)));
    }
    spec
}

fn millis(duration: std::time::Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// A NetworkPolicy on the connecting side's pods that allows every pod
/// but the other side's: egress to them is denied (the link is cut), and
/// for `between` ingress from them too (they cannot connect either).
/// Policies only allow, so "every pod but" is a peer per label of the
/// other side with `NotIn` (peers are or-ed: a pod missing any one of its
/// labels is not the other side). Traffic to non-pod addresses is denied
/// too while it holds; the node's own (probes) always passes.
fn policy_spec(fault: &NetworkFault, ends: &Ends) -> Value {
    let others: Vec<Value> = ends
        .to
        .1
        .iter()
        .map(|(key, value)| json!({ "namespaceSelector": {}, "podSelector": { "matchExpressions": [{ "key": key, "operator": "NotIn", "values": [value] }] } }))
        .collect();
    let mut spec = json!({ "podSelector": { "matchLabels": ends.from.1 }, "policyTypes": ["Egress"], "egress": [{ "to": others }] });
    if matches!(fault.links, Links::Between { .. }) {
        spec["policyTypes"] = json!(["Ingress", "Egress"]);
        spec["ingress"] = json!([{ "from": others }]);
    }
    spec
}

/// The fault an object of ours sets, read back.
fn active(kind: FaultKind, object: &DynamicObject) -> Option<ActiveNetworkFault> {
    let id = object.labels().get(FAULT_LABEL)?.parse().ok()?;
    let fault: NetworkFault = serde_json::from_str(object.annotations().get(FAULT_ANNOTATION)?).ok()?;
    Some(ActiveNetworkFault { id, on: links_of(&fault), fault: kind.as_it_acts(&fault), hits: 0 })
}

/// The links a two-ended fault is on.
fn links_of(fault: &NetworkFault) -> Vec<Link> {
    match &fault.links {
        Links::Between { between: [a, b] } => vec![Link { from: a.clone(), to: b.clone() }, Link { from: b.clone(), to: a.clone() }],
        Links::Ends { from: Some(from), to: Some(to) } => vec![Link { from: from.clone(), to: to.clone() }],
        Links::Ends { .. } => vec![],
    }
}

impl KubePlatform {
    fn faults_api(&self, kind: FaultKind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &kind.resource())
    }

    /// Whether the cluster serves Chaos Mesh's `networkchaos` resource (API
    /// discovery, which every authenticated user may read).
    pub async fn chaos_mesh_installed(&self) -> Result<bool, PlatformError> {
        match self.client.list_api_group_resources(CHAOS_MESH).await {
            Ok(list) => Ok(list.resources.iter().any(|r| r.name == "networkchaos")),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(err) => Err(api_error(err, || PlatformError::Unreachable("no discovery".into()))),
        }
    }

    /// The pod labels of `peer`: a service's (or the gateway's) Deployment
    /// selector, or the broker's pods.
    pub async fn pods_of_peer(&self, peer: &Peer) -> Result<BTreeMap<String, String>, PlatformError> {
        let service = match peer {
            Peer::Broker => return Ok(BTreeMap::from([(BROKER_PODS.0.to_string(), BROKER_PODS.1.to_string())])),
            Peer::Gateway => "gateway",
            Peer::Service(name) => name,
        };
        let deployment = self.deployment(service).await?;
        let labels = deployment.spec.and_then(|s| s.selector.match_labels).unwrap_or_default();
        if labels.is_empty() {
            return Err(PlatformError::Refused(format!("deployment/{service} selects its pods without matchLabels; a network fault selects them by label")));
        }
        Ok(labels)
    }

    /// The object that sets `fault`, with the next free id, after checking
    /// that the cluster can do it: only reads.
    pub async fn plan_network_fault(&self, fault: &NetworkFault) -> Result<FaultObject, PlatformError> {
        if let Some(problem) = fault.problem() {
            return Err(PlatformError::Invalid(problem));
        }
        if let Some(why) = unmappable(fault) {
            return Err(PlatformError::Refused(format!("{fault} cannot be set on a cluster: {why}")));
        }
        if kind_of(&fault.toxic) == FaultKind::NetworkChaos && !self.chaos_mesh_installed().await? {
            return Err(PlatformError::Refused(format!(
                "{fault} needs Chaos Mesh's NetworkChaos (networkchaos.chaos-mesh.org), which this cluster does not serve: install Chaos Mesh (helm install chaos-mesh chaos-mesh/chaos-mesh -n chaos-mesh --create-namespace), or run it with --platform local"
            )));
        }
        let (from, to) = match &fault.links {
            Links::Between { between: [a, b] } => (a, b),
            Links::Ends { from: Some(from), to: Some(to) } => (from, to),
            Links::Ends { .. } => unreachable!("unmappable() refused one-ended links"),
        };
        let ends = Ends { from: (from.clone(), self.pods_of_peer(from).await?), to: (to.clone(), self.pods_of_peer(to).await?) };
        let id = self.network_faults_set().await?.iter().map(|f| f.id).max().unwrap_or(0) + 1;
        Ok(render(fault, id, &ends, &self.namespace, &self.system))
    }

    /// Creates the object `planned` (refused if one of its name exists).
    pub async fn create_fault(&self, planned: &FaultObject, fault: &NetworkFault) -> Result<ActiveNetworkFault, PlatformError> {
        let object: DynamicObject = serde_json::from_value(planned.body.clone()).map_err(|err| PlatformError::Invalid(err.to_string()))?;
        let params = PostParams { dry_run: false, field_manager: Some(FIELD_MANAGER.into()) };
        let created = self.faults_api(planned.kind).create(&params, &object).await.map_err(|err| api_error(err, || PlatformError::Refused(format!("{} is not served here", planned.kind.path(&self.namespace)))))?;
        active(planned.kind, &created).ok_or_else(|| PlatformError::Invalid(format!("{} came back without its fault: {fault}", planned.name)))
    }

    /// Every fault object of ours, with the fault each sets.
    pub async fn fault_objects(&self) -> Result<Vec<(FaultKind, String, ActiveNetworkFault)>, PlatformError> {
        let mut found = Vec::new();
        for kind in [FaultKind::NetworkPolicy, FaultKind::NetworkChaos] {
            let params = ListParams::default().labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER},{PART_OF}={}", self.system));
            let list = match self.faults_api(kind).list(&params).await {
                Ok(list) => list.items,
                // No Chaos Mesh: no NetworkChaos of ours either.
                Err(kube::Error::Api(status)) if status.code == 404 => vec![],
                Err(err) => return Err(api_error(err, || PlatformError::Unreachable("cannot list faults".into()))),
            };
            found.extend(list.iter().filter_map(|o| active(kind, o).map(|a| (kind, o.name_any(), a))));
        }
        found.sort_by_key(|(_, _, a)| a.id);
        Ok(found)
    }

    async fn network_faults_set(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        Ok(self.fault_objects().await?.into_iter().map(|(_, _, a)| a).collect())
    }

    /// Deletes fault object `name`; an object already gone is no failure.
    pub async fn delete_fault(&self, kind: FaultKind, name: &str) -> Result<(), PlatformError> {
        match self.faults_api(kind).delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => Err(api_error(err, || PlatformError::Unreachable(format!("cannot delete {name}")))),
        }
    }

    /// Sets `fault` unguarded (the rails check the ends first).
    pub(super) async fn set_network_fault_at(&self, fault: &NetworkFault) -> Result<ActiveNetworkFault, PlatformError> {
        let planned = self.plan_network_fault(fault).await?;
        self.create_fault(&planned, fault).await
    }

    /// Clears the faults `which` picks, deleting their objects.
    pub(super) async fn clear_network_faults_where(&self, which: impl Fn(&ActiveNetworkFault) -> bool) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        let mut cleared = Vec::new();
        for (kind, name, active) in self.fault_objects().await? {
            if which(&active) {
                self.delete_fault(kind, &name).await?;
                cleared.push(active);
            }
        }
        Ok(cleared)
    }
}

/// The one fault of id `id` that `cleared` holds.
pub(super) fn the_one(id: u64, cleared: Vec<ActiveNetworkFault>) -> Result<ActiveNetworkFault, PlatformError> {
    cleared.into_iter().next().ok_or_else(|| PlatformError::Invalid(format!("no network fault {id} is set")))
}
