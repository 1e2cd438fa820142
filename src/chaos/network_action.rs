//! The `network:` action as an experiment writes it, flat:
//! `{ from: order, to: product, latency: 800ms, jitter: 100ms }`,
//! `{ between: [mypage, broker], partition: true }`,
//! `{ from: delivery, to: broker, reset: true, probability: 0.3 }` —
//! read into the platform's [`NetworkFault`] when the file is parsed, so a
//! wrong mix is refused with the file, the line and what was expected.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::platform::network::{Direction, Links, NetworkFault, Peer, Toxic};

/// `network`: a toxic on some links, for as long as the action holds (and
/// every later one). The fault's expiry is set when it is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NetworkFields", into = "NetworkFields")]
pub struct NetworkAction {
    /// The fault, without its expiry.
    pub fault: NetworkFault,
}

/// The toxics' keys, as the error for a wrong mix lists them.
const TOXICS: &str = "`latency: DURATION` (with `jitter`), `bandwidth: 10KiB/s` (or `bytes_per_second: N`), `reset: true`, `blackhole: true`, `partition: true`, `slow_close: DURATION` or `limit_data: BYTES`";

/// `network:` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<Peer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<Peer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    between: Option<Vec<Peer>>,
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    latency: Option<Duration>,
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    jitter: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bandwidth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes_per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    reset: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    blackhole: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    partition: bool,
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    slow_close: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit_data: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probability: Option<f64>,
}

impl TryFrom<NetworkFields> for NetworkAction {
    type Error = String;

    fn try_from(fields: NetworkFields) -> Result<NetworkAction, String> {
        let links = links(&fields)?;
        let toxic = toxic(&fields)?;
        if fields.jitter.is_some() && !matches!(toxic, Toxic::Latency { .. }) {
            return Err("network: `jitter` spreads a `latency`; it needs one".into());
        }
        let fault = NetworkFault { links, toxic, direction: fields.direction.unwrap_or_default(), probability: fields.probability.unwrap_or(1.0), expires_after: None };
        if let Some(problem) = fault.problem() {
            return Err(format!("network: {problem}"));
        }
        Ok(NetworkAction { fault })
    }
}

fn links(fields: &NetworkFields) -> Result<Links, String> {
    match (&fields.between, &fields.from, &fields.to) {
        (Some(between), None, None) => match between.as_slice() {
            [a, b] => Ok(Links::Between { between: [a.clone(), b.clone()] }),
            _ => Err(format!("network: `between` names two peers, e.g. `between: [mypage, broker]`, not {}", between.len())),
        },
        (None, from, to) if from.is_some() || to.is_some() => Ok(Links::Ends { from: from.clone(), to: to.clone() }),
        (Some(_), _, _) => Err("network: `between` names both ends; leave out `from` and `to`".into()),
        _ => Err("network: expected the links: `from: PEER` and/or `to: PEER`, or `between: [PEER, PEER]` (a service, `gateway` or `broker`)".into()),
    }
}

fn toxic(fields: &NetworkFields) -> Result<Toxic, String> {
    let mut toxics = Vec::new();
    if let Some(latency) = fields.latency {
        toxics.push(Toxic::Latency { latency, jitter: fields.jitter.unwrap_or_default() });
    }
    match (&fields.bandwidth, fields.bytes_per_second) {
        (Some(written), None) => toxics.push(Toxic::Bandwidth { bytes_per_second: bytes_per_second(written)? }),
        (None, Some(bytes_per_second)) => toxics.push(Toxic::Bandwidth { bytes_per_second }),
        (Some(_), Some(_)) => return Err("network: `bandwidth` and `bytes_per_second` say the same thing; give one".into()),
        (None, None) => {}
    }
    for (on, toxic) in [(fields.reset, Toxic::Reset), (fields.blackhole, Toxic::Blackhole), (fields.partition, Toxic::Partition)] {
        if on {
            toxics.push(toxic);
        }
    }
    if let Some(delay) = fields.slow_close {
        toxics.push(Toxic::SlowClose { delay });
    }
    if let Some(bytes) = fields.limit_data {
        toxics.push(Toxic::LimitData { bytes });
    }
    match toxics.len() {
        1 => Ok(toxics.remove(0)),
        0 => Err(format!("network: expected one toxic: {TOXICS}")),
        _ => Err(format!("network: expected exactly one toxic, got {}: one of {TOXICS}", toxics.len())),
    }
}

/// Reads `10KiB/s`, `1.5MB/s`, `500B/s` (the `/s` may be left out).
fn bytes_per_second(written: &str) -> Result<u64, String> {
    let bad = || format!("network: bandwidth `{written}` is not a rate such as `10KiB/s`, `1MB/s` or `500B/s`");
    let rate = written.trim().strip_suffix("/s").unwrap_or(written.trim());
    let split = rate.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rate.len());
    let (number, unit) = rate.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    Ok((number * scale as f64).round() as u64)
}

impl From<NetworkAction> for NetworkFields {
    fn from(action: NetworkAction) -> NetworkFields {
        let fault = action.fault;
        let mut fields = NetworkFields { direction: Some(fault.direction), probability: Some(fault.probability), ..NetworkFields::default() };
        match fault.links {
            Links::Between { between } => fields.between = Some(between.to_vec()),
            Links::Ends { from, to } => (fields.from, fields.to) = (from, to),
        }
        match fault.toxic {
            Toxic::Latency { latency, jitter } => (fields.latency, fields.jitter) = (Some(latency), Some(jitter)),
            Toxic::Bandwidth { bytes_per_second } => fields.bytes_per_second = Some(bytes_per_second),
            Toxic::Reset => fields.reset = true,
            Toxic::Blackhole => fields.blackhole = true,
            Toxic::Partition => fields.partition = true,
            Toxic::SlowClose { delay } => fields.slow_close = Some(delay),
            Toxic::LimitData { bytes } => fields.limit_data = Some(bytes),
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<NetworkFault, String> {
        serde_saphyr::from_str::<NetworkAction>(yaml).map(|a| a.fault).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issues_examples_read_as_faults() {
        let slow = read("{ from: order, to: product, latency: 800ms, jitter: 100ms }").unwrap();
        assert_eq!(slow.toxic, Toxic::Latency { latency: Duration::from_millis(800), jitter: Duration::from_millis(100) });
        assert_eq!(slow.links, Links::Ends { from: Some(Peer::parse("order")), to: Some(Peer::parse("product")) });
        assert_eq!((slow.direction, slow.probability, slow.expires_after), (Direction::Both, 1.0, None));
        let cut = read("{ between: [mypage, broker], partition: true }").unwrap();
        assert_eq!((cut.links, cut.toxic), (Links::Between { between: [Peer::parse("mypage"), Peer::Broker] }, Toxic::Partition));
        let flaky = read("{ from: delivery, to: broker, reset: true, probability: 0.3 }").unwrap();
        assert_eq!((flaky.toxic, flaky.probability), (Toxic::Reset, 0.3));
        let thin = read("{ to: product, bandwidth: 10KiB/s, direction: downstream }").unwrap();
        assert_eq!((thin.toxic, thin.direction), (Toxic::Bandwidth { bytes_per_second: 10240 }, Direction::Downstream));
        assert_eq!(read("{ to: product, bytes_per_second: 500 }").unwrap().toxic, Toxic::Bandwidth { bytes_per_second: 500 });
        assert_eq!(read("{ to: product, slow_close: 2s }").unwrap().toxic, Toxic::SlowClose { delay: Duration::from_secs(2) });
        assert_eq!(read("{ to: product, limit_data: 1000 }").unwrap().toxic, Toxic::LimitData { bytes: 1000 });
        assert_eq!(read("{ from: order, blackhole: true }").unwrap().toxic, Toxic::Blackhole);
    }

    #[test]
    fn a_wrong_mix_says_what_was_expected() {
        for (yaml, expected) in [
            ("{ from: order, to: product }", "expected one toxic: `latency"),
            ("{ from: order, reset: true, partition: true }", "expected exactly one toxic, got 2"),
            ("{ reset: true }", "expected the links"),
            ("{ between: [mypage], partition: true }", "names two peers"),
            ("{ between: [a, b], from: a, partition: true }", "leave out `from` and `to`"),
            ("{ from: order, reset: true, jitter: 5ms }", "`jitter` spreads a `latency`"),
            ("{ from: order, bandwidth: fast }", "not a rate such as `10KiB/s`"),
            ("{ from: order, reset: true, probability: 3 }", "from 0 to 1"),
            ("{ between: [broker, broker], partition: true }", "two different peers"),
            ("{ from: order, latency: 10ms, jitter: 20ms }", "jitter is larger"),
            ("{ from: order, reset: true, loss: 3 }", "loss"),
            ("{ from: order, reset: true, direction: sideways }", "sideways"),
        ] {
            let err = read(yaml).unwrap_err();
            assert!(err.contains(expected), "{yaml}: {err}");
        }
    }

    #[test]
    fn rates_read_in_decimal_and_binary_units() {
        assert_eq!(bytes_per_second("10KiB/s"), Ok(10 * 1024));
        assert_eq!(bytes_per_second("1.5MB/s"), Ok(1_500_000));
        assert_eq!(bytes_per_second("500B/s"), Ok(500));
        assert_eq!(bytes_per_second("2MiB"), Ok(2 << 20));
        assert!(bytes_per_second("/s").is_err() && bytes_per_second("10 furlongs/s").is_err());
    }

    #[test]
    fn an_action_writes_back_as_it_reads() {
        let action: NetworkAction = serde_saphyr::from_str("{ from: delivery, to: broker, reset: true, probability: 0.3 }").unwrap();
        let json = serde_json::to_value(&action).unwrap();
        let back: NetworkAction = serde_json::from_value(json).unwrap();
        assert_eq!(back, action);
    }
}
