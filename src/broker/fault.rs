//! Broker faults: what the embedded broker does wrong on purpose, and to
//! whose requests. A fault is data (serde), set and cleared at runtime
//! through the broker's fault control endpoint (see [`super::control`]).

use std::time::Duration;

use nisshi_sans_io::ErrorCode;
use serde::{Deserialize, Serialize};

/// Whose requests a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Requests whose client id is exactly this.
    Client(String),
    /// Requests whose client id starts with this: every replica of a
    /// service, whose clients are named `SYSTEM.SERVICE/REPLICA` (the relay) and `…/consumer` (so `SYSTEM.SERVICE/`).
    ClientPrefix(String),
    /// A consumer group: its group requests by group id, and the Fetch and
    /// Produce requests of the clients that joined it.
    Group(String),
}

/// The Kafka APIs a fault can answer for, by their protocol names (an
/// experiment may write them in snake_case: `offset_commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Api {
    /// Produce (API key 0).
    #[serde(alias = "produce")]
    Produce,
    /// Fetch (1).
    #[serde(alias = "fetch")]
    Fetch,
    /// OffsetCommit (8).
    #[serde(alias = "offset_commit")]
    OffsetCommit,
    /// JoinGroup (11).
    #[serde(alias = "join_group")]
    JoinGroup,
    /// Heartbeat (12).
    #[serde(alias = "heartbeat")]
    Heartbeat,
    /// SyncGroup (14).
    #[serde(alias = "sync_group")]
    SyncGroup,
}

impl Api {
    /// The API of a request's key, if a fault can answer for it.
    pub fn of_key(api_key: i16) -> Option<Api> {
        Some(match api_key {
            0 => Api::Produce,
            1 => Api::Fetch,
            8 => Api::OffsetCommit,
            11 => Api::JoinGroup,
            12 => Api::Heartbeat,
            14 => Api::SyncGroup,
            _ => return None,
        })
    }
}

/// The Kafka error codes a fault can answer with, by their protocol names.
/// Retriable ones make a client retry or rejoin; the authorization ones are
/// fatal to most clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KafkaError {
    /// -1, the broker failed in a way it does not name.
    UnknownServerError,
    /// 1.
    OffsetOutOfRange,
    /// 2.
    CorruptMessage,
    /// 3.
    UnknownTopicOrPartition,
    /// 5.
    LeaderNotAvailable,
    /// 6: the partition moved; the client refreshes metadata and retries.
    NotLeaderOrFollower,
    /// 7.
    RequestTimedOut,
    /// 10.
    MessageTooLarge,
    /// 14.
    CoordinatorLoadInProgress,
    /// 15.
    CoordinatorNotAvailable,
    /// 16.
    NotCoordinator,
    /// 19.
    NotEnoughReplicas,
    /// 20: written, but not to enough replicas.
    NotEnoughReplicasAfterAppend,
    /// 22.
    IllegalGeneration,
    /// 25.
    UnknownMemberId,
    /// 27: the group is rebalancing; a member rejoins.
    RebalanceInProgress,
    /// 29.
    TopicAuthorizationFailed,
    /// 30.
    GroupAuthorizationFailed,
    /// 56.
    KafkaStorageError,
}

impl KafkaError {
    /// The protocol's error code.
    pub fn code(self) -> ErrorCode {
        match self {
            KafkaError::UnknownServerError => ErrorCode::UnknownServerError,
            KafkaError::OffsetOutOfRange => ErrorCode::OffsetOutOfRange,
            KafkaError::CorruptMessage => ErrorCode::CorruptMessage,
            KafkaError::UnknownTopicOrPartition => ErrorCode::UnknownTopicOrPartition,
            KafkaError::LeaderNotAvailable => ErrorCode::LeaderNotAvailable,
            KafkaError::NotLeaderOrFollower => ErrorCode::NotLeaderOrFollower,
            KafkaError::RequestTimedOut => ErrorCode::RequestTimedOut,
            KafkaError::MessageTooLarge => ErrorCode::MessageTooLarge,
            KafkaError::CoordinatorLoadInProgress => ErrorCode::CoordinatorLoadInProgress,
            KafkaError::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
            KafkaError::NotCoordinator => ErrorCode::NotCoordinator,
            KafkaError::NotEnoughReplicas => ErrorCode::NotEnoughReplicas,
            KafkaError::NotEnoughReplicasAfterAppend => ErrorCode::NotEnoughReplicasAfterAppend,
            KafkaError::IllegalGeneration => ErrorCode::IllegalGeneration,
            KafkaError::UnknownMemberId => ErrorCode::UnknownMemberId,
            KafkaError::RebalanceInProgress => ErrorCode::RebalanceInProgress,
            KafkaError::TopicAuthorizationFailed => ErrorCode::TopicAuthorizationFailed,
            KafkaError::GroupAuthorizationFailed => ErrorCode::GroupAuthorizationFailed,
            KafkaError::KafkaStorageError => ErrorCode::KafkaStorageError,
        }
    }
}

/// What the broker does to a target's requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer every `api` request with `error`, without serving it (a failed
    /// OffsetCommit is `api: OffsetCommit`).
    Error {
        /// The API answered.
        api: Api,
        /// The error answered.
        error: KafkaError,
    },
    /// Hold each Fetch for `delay` before serving it: a slow broker.
    StallFetch {
        /// How long each Fetch is held.
        #[serde(with = "humantime_serde")]
        delay: Duration,
    },
    /// Force a rebalance: each member is told once, on its next Heartbeat,
    /// that the group is rebalancing, and rejoins.
    Rebalance,
}

/// A fault for one target, as set through the control endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerFault {
    /// Whose requests.
    pub target: Target,
    /// What happens to them.
    pub fault: Fault,
    /// The fault clears itself this long after it was set: a harness that
    /// dies while holding a fault does not leave it behind for good.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub expires_after: Option<Duration>,
}

/// A fault that is set, with the evidence of what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Its id, to clear it with.
    pub id: u64,
    /// The fault as set.
    #[serde(flatten)]
    pub fault: BrokerFault,
    /// Requests it has answered, held or told to rejoin so far.
    pub hits: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_reads_from_yaml_with_kafka_names() {
        let text = "target: { client_prefix: shop.order }\nfault: { error: { api: Produce, error: NOT_LEADER_OR_FOLLOWER } }\nexpires_after: 30s\n";
        let fault: BrokerFault = serde_saphyr::from_str(text).unwrap();
        assert_eq!(fault.target, Target::ClientPrefix("shop.order".into()));
        assert_eq!(fault.fault, Fault::Error { api: Api::Produce, error: KafkaError::NotLeaderOrFollower });
        assert_eq!(fault.expires_after, Some(Duration::from_secs(30)));
        assert_eq!(KafkaError::NotLeaderOrFollower.code(), ErrorCode::NotLeaderOrFollower);
    }

    #[test]
    fn stall_and_rebalance_read_and_round_trip() {
        let stall: BrokerFault = serde_json::from_str(r#"{"target":{"group":"g"},"fault":{"stall_fetch":{"delay":"2s"}}}"#).unwrap();
        assert_eq!(stall.fault, Fault::StallFetch { delay: Duration::from_secs(2) });
        let rebalance: BrokerFault = serde_json::from_str(r#"{"target":{"group":"g"},"fault":"rebalance"}"#).unwrap();
        assert_eq!(rebalance.fault, Fault::Rebalance);
        let again: BrokerFault = serde_json::from_value(serde_json::to_value(&stall).unwrap()).unwrap();
        assert_eq!(again, stall);
    }

    #[test]
    fn an_unknown_error_name_is_refused_with_the_name() {
        let err = serde_json::from_str::<BrokerFault>(r#"{"target":{"client":"c"},"fault":{"error":{"api":"Produce","error":"NOT_A_CODE"}}}"#).unwrap_err();
        assert!(err.to_string().contains("NOT_A_CODE"), "{err}");
    }
}
