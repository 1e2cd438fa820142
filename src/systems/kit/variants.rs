//! The broken variants the kit itself runs, for any service that takes
//! them: a consumer group that misses or repeats events, a new group at
//! the topic's end, probes that lie. A service names the ones it accepts
//! beside its own; [`pick`] reads `--variant` against both and the kit
//! applies its kind with [`Kit::run_as`](super::Kit::run_as).

use super::kafka::FROM_LATEST;

/// A variant the kit runs (`system.yaml` lists it under the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KitVariant {
    /// A new consumer group of its own at each start, from the topic's end:
    /// it misses what was published while it was away (replay, CQRS).
    AnonymousGroup,
    /// Every replica reads every partition and applies what it reads
    /// without the inbox's check (scale-out without duplicates).
    ReadsEveryPartition,
    /// Its new consumer group starts at the topic's end (a late read model
    /// that misses the retained events).
    FromLatest,
    /// Ready while it still warms up (readiness).
    ReadyAtOnce,
    /// Live whatever is wrong (liveness, self-healing).
    LiveAlways,
}

impl KitVariant {
    /// Every kit variant.
    pub const ALL: [KitVariant; 5] = [KitVariant::AnonymousGroup, KitVariant::ReadsEveryPartition, KitVariant::FromLatest, KitVariant::ReadyAtOnce, KitVariant::LiveAlways];

    /// Its name as `--variant` takes it.
    pub fn name(self) -> &'static str {
        match self {
            KitVariant::AnonymousGroup => "anonymous-group",
            KitVariant::ReadsEveryPartition => "reads-every-partition",
            KitVariant::FromLatest => FROM_LATEST,
            KitVariant::ReadyAtOnce => "ready-at-once",
            KitVariant::LiveAlways => "live-always",
        }
    }

    /// The kit variant named `name`, if it is one.
    pub fn parse(name: &str) -> Option<KitVariant> {
        KitVariant::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// What a service runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked {
    /// As it is.
    Real,
    /// One of its own variants (its name).
    Own(String),
    /// One of the kit's.
    Kit(KitVariant),
}

impl Picked {
    /// Whether it runs as its own variant `name`.
    pub fn is(&self, name: &str) -> bool {
        matches!(self, Picked::Own(own) if own == name)
    }
}

/// `variant` of `service` read against its own variants (`own`) and the
/// kit's it takes (`kit`); anything else is an error listing them all.
pub fn pick(service: &str, variant: Option<&str>, own: &[&str], kit: &[KitVariant]) -> anyhow::Result<Picked> {
    // An empty variant (an empty STORMPROOF_VARIANT) is none.
    let Some(variant) = variant.filter(|v| !v.is_empty()) else { return Ok(Picked::Real) };
    if own.contains(&variant) {
        return Ok(Picked::Own(variant.to_string()));
    }
    if let Some(found) = kit.iter().copied().find(|v| v.name() == variant) {
        return Ok(Picked::Kit(found));
    }
    let mut names: Vec<&str> = own.iter().copied().chain(kit.iter().map(|v| v.name())).collect();
    names.sort_unstable();
    let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
    anyhow::bail!("{service} has no variant `{variant}` (variants: {known})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_is_the_services_own_or_a_kit_one_it_takes_and_anything_else_is_named() {
        let kit = [KitVariant::AnonymousGroup, KitVariant::FromLatest];
        assert_eq!(pick("calllist", None, &[], &kit).unwrap(), Picked::Real);
        assert_eq!(pick("calllist", Some(""), &[], &kit).unwrap(), Picked::Real);
        assert_eq!(pick("calllist", Some("from-latest"), &[], &kit).unwrap(), Picked::Kit(KitVariant::FromLatest));
        assert!(pick("call", Some("random-key"), &["random-key"], &[]).unwrap().is("random-key"));
        let err = pick("calllist", Some("live-always"), &["x"], &kit).unwrap_err().to_string();
        assert_eq!(err, "calllist has no variant `live-always` (variants: anonymous-group, from-latest, x)");
        assert!(pick("payment", Some("x"), &[], &[]).unwrap_err().to_string().contains("(variants: none)"));
        for v in KitVariant::ALL {
            assert_eq!(KitVariant::parse(v.name()), Some(v));
        }
    }
}
