//! Consumer lag: how far a consumer group is behind its topic — the sum over
//! partitions of the high watermark minus the group's committed offset. It
//! is read with an OffsetFetch, so the probe never joins (or disturbs) the
//! group it measures. Where the harness cannot reach the broker (a cluster
//! whose Kafka advertises in-cluster addresses), the same read runs inside
//! the cluster (`stormproof k8s lag`, as a Job) and its JSON comes back.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};

const TIMEOUT: Duration = Duration::from_secs(3);

/// Reads the lag of a system's consumer groups on its topic. Blocking: call
/// it from a blocking thread.
pub struct LagReader {
    topic: String,
    /// Service and its group.
    groups: Vec<(String, String)>,
    source: Source,
}

/// Runs `stormproof ARGS` where the broker is reachable and returns the last
/// line it printed. Blocking.
pub type Remote = Box<dyn Fn(Vec<String>) -> anyhow::Result<String> + Send + Sync>;

enum Source {
    /// A client in each group (in `groups`' order), at a broker the harness reaches.
    Direct(Vec<BaseConsumer>),
    /// The read run elsewhere against `bootstrap`.
    Remote { bootstrap: String, run: Remote },
}

impl LagReader {
    /// A reader of `groups` (service → consumer group) on `topic` at `bootstrap`.
    pub fn new(bootstrap: &str, topic: &str, groups: &[(String, String)]) -> anyhow::Result<LagReader> {
        let consumers = groups
            .iter()
            .map(|(_, group)| {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", bootstrap)
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .set("log_level", "3")
                    .create()?;
                Ok(consumer)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(LagReader { topic: topic.to_string(), groups: groups.to_vec(), source: Source::Direct(consumers) })
    }

    /// A reader whose reads `run` carries out where `bootstrap` is
    /// reachable, with the command [`LagReader::remote_args`] gives.
    pub fn remote(bootstrap: &str, topic: &str, groups: &[(String, String)], run: Remote) -> LagReader {
        LagReader { topic: topic.to_string(), groups: groups.to_vec(), source: Source::Remote { bootstrap: bootstrap.into(), run } }
    }

    /// The stormproof command that prints the positions of `groups` as JSON.
    pub fn remote_args(bootstrap: &str, topic: &str, groups: &[String]) -> Vec<String> {
        let mut args: Vec<String> = ["k8s", "lag", "--bootstrap", bootstrap, "--topic", topic].map(String::from).to_vec();
        args.extend(groups.iter().flat_map(|g| ["--group".to_string(), g.clone()]));
        args
    }

    /// Whether each read runs elsewhere (a probe Job), and is slow and costly.
    pub fn is_remote(&self) -> bool {
        matches!(self.source, Source::Remote { .. })
    }

    /// The consumer group of `service`, if it consumes the topic.
    pub fn group_of(&self, service: &str) -> Option<String> {
        self.groups.iter().find(|(s, _)| s == service).map(|(_, group)| group.clone())
    }

    /// Lag of every group (a group that committed nothing lags by the whole topic).
    pub fn read(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        Ok(self.positions()?.into_iter().map(|(group, p)| (group, p.behind)).collect())
    }

    /// Lag of every group but those of services not `deployed` that never
    /// committed: a consumer that never ran is not behind, it is absent.
    pub fn read_deployed(&self, deployed: &dyn Fn(&str) -> bool) -> anyhow::Result<BTreeMap<String, i64>> {
        let absent = |service: &str, p: &Position| !deployed(service) && p.read.is_none();
        let services: BTreeMap<&str, &str> = self.groups.iter().map(|(s, g)| (g.as_str(), s.as_str())).collect();
        Ok(self.positions()?.into_iter().filter(|(group, p)| !absent(services[group.as_str()], p)).map(|(group, p)| (group, p.behind)).collect())
    }

    /// Where every group is on the topic.
    pub fn positions(&self) -> anyhow::Result<BTreeMap<String, Position>> {
        match &self.source {
            Source::Direct(consumers) => {
                let mut positions = BTreeMap::new();
                for ((_, group), consumer) in self.groups.iter().zip(consumers) {
                    positions.insert(group.clone(), self.position(consumer)?);
                }
                Ok(positions)
            }
            Source::Remote { bootstrap, run } => {
                let groups: Vec<String> = self.groups.iter().map(|(_, g)| g.clone()).collect();
                let line = run(Self::remote_args(bootstrap, &self.topic, &groups))?;
                serde_json::from_str(&line).map_err(|err| anyhow::anyhow!("the lag read in the cluster printed no positions ({err}): {line}"))
            }
        }
    }

    fn position(&self, consumer: &BaseConsumer) -> anyhow::Result<Position> {
        let metadata = consumer.fetch_metadata(Some(&self.topic), TIMEOUT)?;
        let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        let mut list = TopicPartitionList::new();
        for partition in &partitions {
            list.add_partition(&self.topic, *partition);
        }
        let committed = consumer.committed_offsets(list, TIMEOUT)?;
        let (mut behind, mut read) = (0, None);
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(&self.topic, partition, TIMEOUT)?;
            let at = match committed.find_partition(&self.topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => {
                    *read.get_or_insert(0) += (offset - low).max(0);
                    offset
                }
                _ => low,
            };
            behind += (high - at).max(0);
        }
        Ok(Position { behind, read })
    }
}

/// Where a consumer group is on its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Events behind the head (all of them, for a group that committed nothing).
    pub behind: i64,
    /// Events it has committed past, counted from the oldest retained one;
    /// none if it has committed no offset at all.
    pub read: Option<i64>,
}
