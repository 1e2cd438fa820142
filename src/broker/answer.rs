//! Error responses built from a request: the answer a faulted request gets,
//! shaped as the real broker shapes its own errors (every partition of the
//! request named, with the error code), so clients take their usual error
//! paths (retry, refresh metadata, rejoin).

use bytes::Bytes;
use nisshi_broker::Error;
use nisshi_sans_io::fetch_response::{FetchableTopicResponse, PartitionData};
use nisshi_sans_io::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use nisshi_sans_io::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use nisshi_sans_io::{
    Body, ErrorCode, FetchRequest, FetchResponse, HeartbeatResponse, JoinGroupResponse, OffsetCommitRequest, OffsetCommitResponse,
    ProduceRequest, ProduceResponse, SyncGroupResponse,
};

/// The response to `request` that answers `code` (the request is not
/// served). An acks=0 Produce expects no response: it fails as Kafka fails
/// one, by closing the connection.
pub fn error_response(request: &Body, code: ErrorCode) -> Result<Body, Error> {
    let error_code = i16::from(code);
    Ok(match request {
        Body::ProduceRequest(r) if r.acks == 0 => return Err(Error::Api(code)),
        Body::ProduceRequest(r) => produce(r, error_code).into(),
        Body::FetchRequest(r) => fetch(r, error_code).into(),
        Body::OffsetCommitRequest(r) => offset_commit(r, error_code).into(),
        Body::HeartbeatRequest(_) => HeartbeatResponse::default().throttle_time_ms(Some(0)).error_code(error_code).into(),
        Body::JoinGroupRequest(r) => JoinGroupResponse::default()
            .throttle_time_ms(Some(0))
            .error_code(error_code)
            .generation_id(-1)
            .protocol_type(None)
            // Non-nullable before version 7 (as nisshi's own error answers).
            .protocol_name(Some(String::new()))
            .leader(String::new())
            .skip_assignment(Some(false))
            .member_id(r.member_id.clone())
            .members(Some(Vec::new()))
            .into(),
        Body::SyncGroupRequest(_) => SyncGroupResponse::default()
            .throttle_time_ms(Some(0))
            .error_code(error_code)
            .protocol_type(None)
            .protocol_name(None)
            .assignment(Bytes::new())
            .into(),
        other => return Err(Error::Message(format!("no fault answer for {other:?}"))),
    })
}

fn produce(request: &ProduceRequest, error_code: i16) -> ProduceResponse {
    let topics = request.topic_data.iter().flatten().map(|topic| {
        let partitions = topic.partition_data.iter().flatten().map(|partition| {
            PartitionProduceResponse::default()
                .index(partition.index)
                .error_code(error_code)
                .base_offset(-1)
                .log_append_time_ms(Some(-1))
                .log_start_offset(Some(0))
                .record_errors(Some(Vec::new()))
                .error_message(None)
                .current_leader(None)
        });
        TopicProduceResponse::default().name(topic.name.clone()).partition_responses(Some(partitions.collect()))
    });
    ProduceResponse::default().responses(Some(topics.collect())).throttle_time_ms(Some(0)).node_endpoints(None)
}

fn fetch(request: &FetchRequest, error_code: i16) -> FetchResponse {
    let topics = request.topics.iter().flatten().map(|topic| {
        let partitions = topic.partitions.iter().flatten().map(|partition| {
            PartitionData::default()
                .partition_index(partition.partition)
                .error_code(error_code)
                .high_watermark(-1)
                .last_stable_offset(Some(-1))
                .log_start_offset(Some(-1))
                .diverging_epoch(None)
                .current_leader(None)
                .snapshot_id(None)
                .aborted_transactions(Some(Vec::new()))
                .preferred_read_replica(Some(-1))
                .records(None)
        });
        // From v13 a client matches a response topic by id.
        FetchableTopicResponse::default().topic(topic.topic.clone()).topic_id(topic.topic_id).partitions(Some(partitions.collect()))
    });
    FetchResponse::default()
        .throttle_time_ms(Some(0))
        .error_code(Some(i16::from(ErrorCode::None)))
        .session_id(Some(0))
        .responses(Some(topics.collect()))
        .node_endpoints(Some(Vec::new()))
}

fn offset_commit(request: &OffsetCommitRequest, error_code: i16) -> OffsetCommitResponse {
    let topics = request.topics.iter().flatten().map(|topic| {
        let partitions = topic
            .partitions
            .iter()
            .flatten()
            .map(|partition| OffsetCommitResponsePartition::default().partition_index(partition.partition_index).error_code(error_code));
        OffsetCommitResponseTopic::default().name(topic.name.clone()).partitions(Some(partitions.collect()))
    });
    OffsetCommitResponse::default().throttle_time_ms(Some(0)).topics(Some(topics.collect()))
}
