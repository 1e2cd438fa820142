//! A service of the user's own as a process: the command line and
//! environment of one replica, with the platform's `${NAME}` variables
//! substituted — what the local platform starts, and the contract verifier
//! when it starts such a provider.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::definition::VariantDef;

/// The variables a command, its environment and its variants may use.
/// Each is also set in the process's environment under the same name.
pub const VARS: [&str; 8] = ["PORT", "KAFKA_BOOTSTRAP", "TOPIC", "REPLICA", "DATA_DIR", "GROUP", "VERSION", "SYSTEM_DIR"];

/// The values of [`VARS`] for one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vars {
    /// The port it must listen on (127.0.0.1).
    pub port: u16,
    /// Kafka bootstrap servers.
    pub kafka_bootstrap: String,
    /// The system's topic.
    pub topic: String,
    /// The replica's name (`order-2`).
    pub replica: String,
    /// The service's own data folder (shared by its replicas, as a database is).
    pub data_dir: PathBuf,
    /// The consumer group it consumes in.
    pub group: String,
    /// The version label it runs (`v1`, `v2` after a rollout).
    pub version: String,
    /// The system's folder (commands run in it).
    pub system_dir: PathBuf,
}

impl Vars {
    fn pairs(&self) -> [(&'static str, String); 8] {
        [
            ("PORT", self.port.to_string()),
            ("KAFKA_BOOTSTRAP", self.kafka_bootstrap.clone()),
            ("TOPIC", self.topic.clone()),
            ("REPLICA", self.replica.clone()),
            ("DATA_DIR", self.data_dir.display().to_string()),
            ("GROUP", self.group.clone()),
            ("VERSION", self.version.clone()),
            ("SYSTEM_DIR", self.system_dir.display().to_string()),
        ]
    }

    /// `text` with every `${NAME}` replaced by its value.
    pub fn substitute(&self, text: &str) -> String {
        self.pairs().iter().fold(text.to_string(), |text, (name, value)| text.replace(&format!("${{{name}}}"), value))
    }
}

/// Checks that `texts` use no variable but [`VARS`]; the error names the
/// unknown one and lists the known.
pub fn check_vars<'a>(texts: impl Iterator<Item = &'a String>) -> Result<(), String> {
    for text in texts {
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else { return Err(format!("`{text}`: `${{` without a closing `}}`")) };
            let name = &after[..end];
            if !VARS.contains(&name) {
                return Err(format!("`{text}`: unknown variable ${{{name}}} (known: {})", VARS.map(|v| format!("${{{v}}}")).join(", ")));
            }
            rest = &after[end + 1..];
        }
    }
    Ok(())
}

/// The command and environment `argv` with `env` runs as `variant`: the
/// variant's command if it gives one, its environment over `env`.
pub fn with_variant(argv: &[String], env: &BTreeMap<String, String>, variants: &BTreeMap<String, VariantDef>, variant: Option<&str>) -> (Vec<String>, BTreeMap<String, String>) {
    let (mut argv, mut env) = (argv.to_vec(), env.clone());
    if let Some(VariantDef::Runs(runs)) = variant.and_then(|v| variants.get(v)) {
        argv = runs.command.clone().unwrap_or(argv);
        env.extend(runs.env.clone());
    }
    (argv, env)
}

/// How to start one replica of a service of the user's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program: a path relative to the system's folder when it has a
    /// `/`, else looked up on `PATH`.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its environment on top of the platform's: [`VARS`], then the
    /// service's own `env` (which may override them).
    pub env: Vec<(String, String)>,
    /// Where it runs: the system's folder.
    pub dir: PathBuf,
}

/// The invocation of `argv` with `env` for the replica `vars` describes.
pub fn invocation(argv: &[String], env: &BTreeMap<String, String>, vars: &Vars) -> Invocation {
    let mut words = argv.iter().map(|word| vars.substitute(word));
    let program = words.next().unwrap_or_default();
    let program = if program.contains('/') { vars.system_dir.join(Path::new(&program)) } else { PathBuf::from(program) };
    let mut all: Vec<(String, String)> = vars.pairs().into_iter().map(|(name, value)| (name.to_string(), value)).collect();
    all.extend(env.iter().map(|(name, value)| (name.clone(), vars.substitute(value))));
    Invocation { program, args: words.collect(), env: all, dir: vars.system_dir.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            port: 4321,
            kafka_bootstrap: "127.0.0.1:9092".into(),
            topic: "orders".into(),
            replica: "order-2".into(),
            data_dir: "/run/data/order".into(),
            group: "mine.order".into(),
            version: "v2".into(),
            system_dir: "/home/me/my-system".into(),
        }
    }

    #[test]
    fn variables_are_substituted_in_the_command_and_its_environment() {
        let argv = ["python".to_string(), "services/order.py".into(), "--port=${PORT}".into(), "${DATA_DIR}/db".into()];
        let env = BTreeMap::from([("SERVER_PORT".to_string(), "${PORT}".to_string()), ("TOPIC".to_string(), "override".to_string())]);
        let run = invocation(&argv[..1], &env, &vars());
        assert_eq!(run.program, PathBuf::from("python"), "a bare name is looked up on PATH");
        let run = invocation(&["bin/order".to_string(), argv[2].clone(), argv[3].clone()], &env, &vars());
        assert_eq!(run.program, PathBuf::from("/home/me/my-system/bin/order"), "a relative path is the system folder's");
        assert_eq!(run.args, ["--port=4321", "/run/data/order/db"]);
        assert_eq!(run.dir, PathBuf::from("/home/me/my-system"));
        assert!(run.env.contains(&("SERVER_PORT".into(), "4321".into())));
        assert!(run.env.contains(&("REPLICA".into(), "order-2".into())));
        let topics: Vec<&str> = run.env.iter().filter(|(k, _)| k == "TOPIC").map(|(_, v)| v.as_str()).collect();
        assert_eq!(topics, ["orders", "override"], "the service's own env comes last, so it wins");
    }

    #[test]
    fn an_unknown_variable_is_named_with_the_known_ones() {
        assert!(check_vars(["--port=${PORT}".to_string(), "$HOME/x".into()].iter()).is_ok(), "a shell-style $HOME is left alone");
        let err = check_vars(["--port=${PROT}".to_string()].iter()).unwrap_err();
        assert!(err.contains("unknown variable ${PROT}") && err.contains("${PORT}") && err.contains("${KAFKA_BOOTSTRAP}"), "{err}");
        assert!(check_vars(["${PORT".to_string()].iter()).unwrap_err().contains("without a closing"));
    }
}
