//! The catalog: the systems stormproof can act on, and where each one's
//! files are. A *system* is a folder — its definition (`system.yaml`), its
//! checkpoints (`checkpoints.yaml`), experiments (`chaos/*.yaml`),
//! contracts (`contracts/`: pacts, message triggers, provider states) and
//! siege URL files (`*.urls`). The built-in systems keep the repository's
//! top-level layout (`scenarios/SYS/`, `chaos/SYS/`, `contracts/SYS/`) and
//! are compiled into the binary by `build.rs`, so they run anywhere; any
//! other system is a folder given by path.
//!
//! The catalog only finds files: each engine parses its own (the check
//! engine its checkpoints, the chaos engine its experiments, the contract
//! engine its triggers and states).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::definition::SystemDef;

include!(concat!(env!("OUT_DIR"), "/builtin_files.rs"));

/// Which of a system's folders a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The definition, checkpoints and URL files (a folder's top level).
    Scenarios,
    /// Experiments (`chaos/`).
    Chaos,
    /// Pacts, triggers and provider states (`contracts/`).
    Contracts,
}

impl Part {
    fn folder(self) -> &'static str {
        match self {
            Part::Scenarios => "scenarios",
            Part::Chaos => "chaos",
            Part::Contracts => "contracts",
        }
    }
}

/// One text file of a system.
#[derive(Debug, Clone)]
pub struct SystemFile {
    /// Its file name (`delivery-outage.yaml`).
    pub name: String,
    /// Where it is, for messages (`chaos/shop/delivery-outage.yaml`).
    pub origin: String,
    /// Its text.
    pub text: String,
}

impl SystemFile {
    /// The name without its extension (`delivery-outage`).
    pub fn stem(&self) -> &str {
        self.name.rsplit_once('.').map_or(self.name.as_str(), |(stem, _)| stem)
    }
}

#[derive(Debug, Clone)]
enum Source {
    Builtin(String),
    Folder(PathBuf),
}

/// A system: its definition and where its other files are.
#[derive(Debug, Clone)]
pub struct System {
    /// Its definition (`system.yaml`).
    pub def: SystemDef,
    source: Source,
}

impl System {
    /// The system `reference` names: a built-in's name, or the path of a
    /// folder. A name that is neither lists the known ones.
    pub fn resolve(reference: &str) -> anyhow::Result<System> {
        if builtin_names().contains(&reference) {
            return System::builtin(reference);
        }
        let path = Path::new(reference);
        if path.is_dir() {
            return System::folder(path);
        }
        if reference.contains('/') || reference.starts_with('.') {
            anyhow::bail!("no system folder at {reference}");
        }
        anyhow::bail!("unknown system `{reference}` (known: {}; or give the path of a folder with a system.yaml)", builtin_names().join(", "))
    }

    /// The built-in system `name`.
    pub fn builtin(name: &str) -> anyhow::Result<System> {
        let source = Source::Builtin(name.to_string());
        let origin = origin(&source, Part::Scenarios, "system.yaml");
        let (_, yaml) = FILES
            .iter()
            .find(|(path, _)| *path == origin)
            .ok_or_else(|| anyhow::anyhow!("unknown system `{name}` (known: {})", builtin_names().join(", ")))?;
        Ok(System { def: SystemDef::parse(yaml, &origin)?, source })
    }

    /// The system in folder `path` (it must hold a `system.yaml`).
    pub fn folder(path: &Path) -> anyhow::Result<System> {
        let dir = std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
        let file = dir.join("system.yaml");
        let yaml = std::fs::read_to_string(&file).map_err(|err| anyhow::anyhow!("{} is not a system folder: cannot read {}: {err}", path.display(), file.display()))?;
        let mut def = SystemDef::parse(&yaml, &file.display().to_string())?;
        def.folder = Some(dir.clone());
        Ok(System { def, source: Source::Folder(dir) })
    }

    /// The system's name (`system:` in its definition).
    pub fn name(&self) -> &str {
        &self.def.system
    }

    /// How a child command names this system again: the built-in's name, or
    /// the folder's absolute path.
    pub fn reference(&self) -> String {
        match &self.source {
            Source::Builtin(name) => name.clone(),
            Source::Folder(dir) => dir.display().to_string(),
        }
    }

    /// The folder on disk, for a system given by path.
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            Source::Builtin(_) => None,
            Source::Folder(dir) => Some(dir),
        }
    }

    /// Where file `name` of `part` is (whether or not it exists).
    pub fn origin(&self, part: Part, name: &str) -> String {
        origin(&self.source, part, name)
    }

    /// File `name` of `part`, if the system has it.
    pub fn file(&self, part: Part, name: &str) -> anyhow::Result<Option<SystemFile>> {
        let origin = self.origin(part, name);
        let text = match &self.source {
            Source::Builtin(_) => FILES.iter().find(|(path, _)| *path == origin).map(|(_, text)| text.to_string()),
            Source::Folder(_) => match std::fs::read_to_string(&origin) {
                Ok(text) => Some(text),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => anyhow::bail!("cannot read {origin}: {err}"),
            },
        };
        Ok(text.map(|text| SystemFile { name: name.to_string(), origin, text }))
    }

    /// The files of `part` whose names end in `.EXT`, sorted by name.
    pub fn files(&self, part: Part, ext: &str) -> anyhow::Result<Vec<SystemFile>> {
        let suffix = format!(".{ext}");
        let mut names: Vec<String> = match &self.source {
            Source::Builtin(_) => {
                let prefix = self.origin(part, "");
                FILES.iter().filter_map(|(path, _)| path.strip_prefix(&prefix)).filter(|name| !name.contains('/')).map(str::to_string).collect()
            }
            Source::Folder(_) => {
                let dir = PathBuf::from(self.origin(part, ""));
                match std::fs::read_dir(&dir) {
                    Ok(entries) => entries.filter_map(|e| e.ok()).filter(|e| e.path().is_file()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(err) => anyhow::bail!("cannot read {}: {err}", dir.display()),
                }
            }
        };
        names.retain(|name| name.ends_with(&suffix));
        names.sort();
        names.iter().filter_map(|name| self.file(part, name).transpose()).collect()
    }

    /// The contracts folder on disk: a folder's own `contracts/`, or a
    /// built-in's pacts, triggers and states written into `scratch`.
    pub fn contracts_dir(&self, scratch: &Path) -> anyhow::Result<PathBuf> {
        if let Source::Folder(dir) = &self.source {
            return Ok(dir.join(Part::Contracts.folder()));
        }
        std::fs::create_dir_all(scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
        for ext in ["json", "yaml"] {
            for file in self.files(Part::Contracts, ext)? {
                std::fs::write(scratch.join(&file.name), &file.text).with_context(|| format!("cannot write {}", scratch.join(&file.name).display()))?;
            }
        }
        Ok(scratch.to_path_buf())
    }
}

fn origin(source: &Source, part: Part, name: &str) -> String {
    match (source, part) {
        (Source::Builtin(system), part) => format!("{}/{system}/{name}", part.folder()),
        (Source::Folder(dir), Part::Scenarios) => dir.join(name).display().to_string(),
        (Source::Folder(dir), part) => {
            // `dir/chaos/` with its trailing slash when `name` is empty.
            let folder = dir.join(part.folder());
            if name.is_empty() { format!("{}/", folder.display()) } else { folder.join(name).display().to_string() }
        }
    }
}

/// Names of the built-in systems.
pub fn builtin_names() -> Vec<&'static str> {
    FILES.iter().filter_map(|(path, _)| path.strip_prefix("scenarios/")?.strip_suffix("/system.yaml")).collect()
}

impl SystemDef {
    /// The definition of a built-in system.
    pub fn builtin(name: &str) -> anyhow::Result<SystemDef> {
        Ok(System::builtin(name)?.def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtins_are_found_by_name_with_every_file_of_their_folders() {
        assert!(builtin_names().contains(&"shop"));
        let shop = System::resolve("shop").unwrap();
        assert_eq!((shop.name(), shop.reference().as_str()), ("shop", "shop"));
        let experiments = shop.files(Part::Chaos, "yaml").unwrap();
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/chaos/shop")).unwrap().count();
        assert_eq!(experiments.len(), on_disk, "every experiment is embedded");
        assert_eq!(experiments[0].origin, format!("chaos/shop/{}", experiments[0].name));
        assert!(shop.file(Part::Scenarios, "checkpoints.yaml").unwrap().is_some());
        assert!(shop.file(Part::Contracts, "nope.yaml").unwrap().is_none());
        assert!(!shop.files(Part::Scenarios, "urls").unwrap().is_empty());
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let err = System::resolve("taxi-not-yet").unwrap_err().to_string();
        assert!(err.contains("unknown system `taxi-not-yet`") && err.contains("shop"), "{err}");
        let err = System::resolve("./no/such/folder").unwrap_err().to_string();
        assert!(err.contains("no system folder at ./no/such/folder"), "{err}");
    }

    #[test]
    fn a_folder_is_read_from_disk_in_its_own_layout() {
        let dir = std::env::temp_dir().join(format!("stormproof-catalog-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("chaos")).unwrap();
        std::fs::write(dir.join("system.yaml"), System::builtin("shop").unwrap().file(Part::Scenarios, "system.yaml").unwrap().unwrap().text).unwrap();
        std::fs::write(dir.join("chaos/a.yaml"), "title: a").unwrap();
        std::fs::write(dir.join("chaos/notes.txt"), "not an experiment").unwrap();
        let system = System::resolve(dir.to_str().unwrap()).unwrap();
        assert_eq!(system.reference(), dir.display().to_string());
        let files = system.files(Part::Chaos, "yaml").unwrap();
        assert_eq!(files.iter().map(|f| f.stem()).collect::<Vec<_>>(), ["a"]);
        assert!(system.file(Part::Scenarios, "checkpoints.yaml").unwrap().is_none());
        assert_eq!(system.contracts_dir(Path::new("/unused")).unwrap(), dir.join("contracts"));
        let _ = std::fs::remove_dir_all(&dir);
        let err = System::folder(Path::new("/tmp")).unwrap_err().to_string();
        assert!(err.contains("is not a system folder"), "{err}");
    }
}
