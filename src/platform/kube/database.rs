//! The services' database on a cluster: one PostgreSQL server as a
//! StatefulSet (the official `postgres` image, one replica, its data on a
//! PersistentVolumeClaim from a volumeClaimTemplate, a headless Service,
//! readiness by `pg_isready`), and the Secret that holds its password and
//! the URL every service pod reads as `STORMPROOF_DATABASE_URL`. Each
//! service keeps its own schema in it (named after the service), so one URL
//! serves the whole system. Or, with [`Database::Existing`], none of that:
//! the URL comes from a Secret the user made for a database of their own.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort, ServiceSpec, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{NAME, PART_OF, ROLE};

/// The variable a service reads its database URL from (the kit's store
/// picks PostgreSQL when it is set).
pub const DATABASE_URL_ENV: &str = "STORMPROOF_DATABASE_URL";
/// The official image, by major version: a minor upgrade keeps the data
/// directory's format, a major one does not.
pub const POSTGRES_IMAGE: &str = "postgres:17";
/// The role and database the services connect as.
const USER: &str = "stormproof";
const PORT: i32 = 5432;
/// The Secret key of the server's password.
const PASSWORD_KEY: &str = "POSTGRES_PASSWORD";
/// Where the volume is mounted. The image's own `PGDATA` is a directory
/// below it: a fresh volume's root may hold `lost+found`, which `initdb`
/// refuses to initialise over.
const MOUNT: &str = "/var/lib/postgresql/data";

/// Where the services' database comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A PostgreSQL StatefulSet rendered with the system, with this
    /// password (generated at render time, never a fixed string).
    StatefulSet {
        /// The server's password, also inside the URL.
        password: String,
        /// Size of its PersistentVolumeClaim (e.g. `1Gi`).
        storage: String,
    },
    /// A database of the user's: the name of a Secret in the namespace
    /// whose key `STORMPROOF_DATABASE_URL` holds its postgres:// URL.
    Existing(String),
}

impl Database {
    /// A StatefulSet with a new random password (as the JWT key is made).
    pub fn generated() -> Database {
        Database::with_password(uuid::Uuid::new_v4().simple().to_string())
    }

    /// A StatefulSet with `password` and a 1 GiB volume.
    pub fn with_password(password: String) -> Database {
        Database::StatefulSet { password, storage: "1Gi".into() }
    }

    /// The Secret (and its key) each service pod reads its URL from.
    pub fn url_secret(&self, system: &str) -> String {
        match self {
            Database::StatefulSet { .. } => secret_name(system),
            Database::Existing(secret) => secret.clone(),
        }
    }

    /// The variable a service container gets: the URL, from the Secret.
    pub fn url_env(&self, system: &str) -> EnvVar {
        secret_env(DATABASE_URL_ENV, &self.url_secret(system), DATABASE_URL_ENV)
    }
}

/// The name of the rendered Secret, Service and StatefulSet's prefix.
pub fn secret_name(system: &str) -> String {
    format!("{system}-database")
}

/// The server's name: its StatefulSet and headless Service.
pub fn server_name(system: &str) -> String {
    format!("{system}-postgres")
}

/// The URL the services reach the rendered server at (its headless
/// Service's name resolves to the one pod).
pub fn url(system: &str, password: &str) -> String {
    format!("postgres://{USER}:{password}@{}:{PORT}/{USER}", server_name(system))
}

/// The objects of a rendered server: its Secret, headless Service and
/// StatefulSet (none for an existing database).
pub struct Rendered {
    /// Password and URL.
    pub secret: Secret,
    /// The headless Service the StatefulSet's pod is named under.
    pub service: Service,
    /// The server.
    pub stateful_set: StatefulSet,
}

/// The server of `system` with `password`, or nothing for an existing database.
pub fn render(system: &str, database: &Database) -> Option<Rendered> {
    let Database::StatefulSet { password, storage } = database else { return None };
    let labels = labels(system);
    let secret = Secret {
        metadata: meta(&secret_name(system), &labels),
        string_data: Some(BTreeMap::from([(PASSWORD_KEY.to_string(), password.clone()), (DATABASE_URL_ENV.to_string(), url(system, password))])),
        ..Secret::default()
    };
    let service = Service {
        metadata: meta(&server_name(system), &labels),
        spec: Some(ServiceSpec {
            // Headless: the StatefulSet's pod gets a stable DNS name under it.
            cluster_ip: Some("None".into()),
            selector: Some(labels.clone()),
            ports: Some(vec![ServicePort { name: Some("postgres".into()), port: PORT, target_port: Some(IntOrString::String("postgres".into())), ..ServicePort::default() }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let stateful_set = StatefulSet {
        metadata: meta(&server_name(system), &labels),
        spec: Some(StatefulSetSpec {
            service_name: Some(server_name(system)),
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels.clone()), ..ObjectMeta::default() }),
                spec: Some(PodSpec { containers: vec![container(system)], ..PodSpec::default() }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta { name: Some("data".into()), labels: Some(labels), ..ObjectMeta::default() },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    resources: Some(VolumeResourceRequirements { requests: Some(BTreeMap::from([("storage".to_string(), Quantity(storage.clone()))])), ..VolumeResourceRequirements::default() }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    };
    Some(Rendered { secret, service, stateful_set })
}

/// The password of the server already rendered into `namespace`, if any:
/// its data directory was initialised with it, so a second apply keeps it.
pub async fn existing_password(client: &kube::Client, namespace: &str, system: &str) -> Option<String> {
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let secret = secrets.get_opt(&secret_name(system)).await.ok()??;
    let password = secret.data?.remove(PASSWORD_KEY)?;
    String::from_utf8(password.0).ok().filter(|p| !p.is_empty())
}

fn container(system: &str) -> Container {
    let env = |name: &str, value: &str| EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() };
    let ready = ["pg_isready", "-h", "127.0.0.1", "-U", USER, "-d", USER].map(String::from).to_vec();
    Container {
        name: "postgres".into(),
        image: Some(POSTGRES_IMAGE.into()),
        env: Some(vec![
            env("POSTGRES_USER", USER),
            env("POSTGRES_DB", USER),
            secret_env(PASSWORD_KEY, &secret_name(system), PASSWORD_KEY),
            env("PGDATA", &format!("{MOUNT}/pgdata")),
        ]),
        ports: Some(vec![ContainerPort { name: Some("postgres".into()), container_port: PORT, ..ContainerPort::default() }]),
        readiness_probe: Some(Probe { exec: Some(ExecAction { command: Some(ready) }), period_seconds: Some(2), failure_threshold: Some(3), ..Probe::default() }),
        resources: Some(ResourceRequirements { requests: Some(BTreeMap::from([("cpu".to_string(), Quantity("100m".into()))])), ..ResourceRequirements::default() }),
        volume_mounts: Some(vec![VolumeMount { name: "data".into(), mount_path: MOUNT.into(), ..VolumeMount::default() }]),
        ..Container::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource { secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: None }), ..EnvVarSource::default() }),
        ..EnvVar::default()
    }
}

fn labels(system: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(PART_OF.to_string(), system.to_string()), (NAME.to_string(), server_name(system)), (ROLE.to_string(), "infrastructure".to_string())])
}

fn meta(name: &str, labels: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), labels: Some(labels.clone()), ..ObjectMeta::default() }
}
