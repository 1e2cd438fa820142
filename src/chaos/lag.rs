//! Consumer lag: how far a consumer group is behind its topic — the sum over
//! partitions of the high watermark minus the group's committed offset. It
//! is read with an OffsetFetch, so the probe never joins (or disturbs) the
//! group it measures.

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
    /// Service, its group, a client in that group.
    groups: Vec<(String, String, BaseConsumer)>,
}

impl LagReader {
    /// A reader of `groups` (service → consumer group) on `topic` at `bootstrap`.
    pub fn new(bootstrap: &str, topic: &str, groups: &[(String, String)]) -> anyhow::Result<LagReader> {
        let groups = groups
            .iter()
            .map(|(service, group)| {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", bootstrap)
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .set("log_level", "3")
                    .create()?;
                Ok((service.clone(), group.clone(), consumer))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(LagReader { topic: topic.to_string(), groups })
    }

    /// The consumer group of `service`, if it consumes the topic.
    pub fn group_of(&self, service: &str) -> Option<String> {
        self.groups.iter().find(|(s, _, _)| s == service).map(|(_, group, _)| group.clone())
    }

    /// Lag of every group (a group that committed nothing lags by the whole topic).
    pub fn read(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        Ok(self.positions()?.into_iter().map(|(group, p)| (group, p.behind)).collect())
    }

    /// Lag of every group but those of services not `deployed` that never
    /// committed: a consumer that never ran is not behind, it is absent.
    pub fn read_deployed(&self, deployed: &dyn Fn(&str) -> bool) -> anyhow::Result<BTreeMap<String, i64>> {
        let absent = |service: &str, p: &Position| !deployed(service) && p.read.is_none();
        let services: BTreeMap<&str, &str> = self.groups.iter().map(|(s, g, _)| (g.as_str(), s.as_str())).collect();
        Ok(self.positions()?.into_iter().filter(|(group, p)| !absent(services[group.as_str()], p)).map(|(group, p)| (group, p.behind)).collect())
    }

    /// Where every group is on the topic.
    pub fn positions(&self) -> anyhow::Result<BTreeMap<String, Position>> {
        let mut positions = BTreeMap::new();
        for (_, group, consumer) in &self.groups {
            positions.insert(group.clone(), self.position(consumer)?);
        }
        Ok(positions)
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Events behind the head (all of them, for a group that committed nothing).
    pub behind: i64,
    /// Events it has committed past, counted from the oldest retained one;
    /// none if it has committed no offset at all.
    pub read: Option<i64>,
}
