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
        let mut lags = BTreeMap::new();
        for (_, group, consumer) in &self.groups {
            lags.insert(group.clone(), self.lag(consumer)?);
        }
        Ok(lags)
    }

    fn lag(&self, consumer: &BaseConsumer) -> anyhow::Result<i64> {
        let metadata = consumer.fetch_metadata(Some(&self.topic), TIMEOUT)?;
        let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        let mut list = TopicPartitionList::new();
        for partition in &partitions {
            list.add_partition(&self.topic, *partition);
        }
        let committed = consumer.committed_offsets(list, TIMEOUT)?;
        let mut lag = 0;
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(&self.topic, partition, TIMEOUT)?;
            let at = match committed.find_partition(&self.topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => low,
            };
            lag += (high - at).max(0);
        }
        Ok(lag)
    }
}
