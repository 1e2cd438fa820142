//! Each broker fault kind against real rdkafka clients: it shows while set
//! (the error code, the stall, the rebalance is observed, and the fault
//! counts its hits) and is gone once cleared. Set and cleared through the
//! broker process's fault endpoint, as an experiment would.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use nisshi_sans_io::ErrorCode;
use stormproof::broker::{Api, BrokerFault, Fault, KafkaError, Target};

use crate::harness::{BrokerProcess, Receiver, Ticker, eventually, raw_produce};

fn fault(target: Target, fault: Fault) -> BrokerFault {
    BrokerFault { target, fault, expires_after: None }
}

async fn send(producer: &FutureProducer, topic: &str, key: &str) -> Result<(), ClientError> {
    producer.send(FutureRecord::to(topic).key(key).payload(key), Duration::from_secs(5)).await.map(|_| ()).map_err(|(err, _)| err)
}

/// A producer that does not retry, so the broker's error reaches it as is.
fn plain_producer(bootstrap: &str, client_id: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("enable.idempotence", "false")
        .set("message.send.max.retries", "0")
        .set("message.timeout.ms", "5000")
        .create()
        .unwrap()
}

#[tokio::test]
async fn produce_errors_reach_one_client_while_set() {
    let broker = BrokerProcess::start();
    let settings = broker.topic("produce-faults", 3).await;
    let (faulty, healthy) = (plain_producer(&broker.bootstrap(), "shop.order/order-1"), plain_producer(&broker.bootstrap(), "shop.mypage/mypage-1"));
    send(&faulty, "produce-faults", "before").await.expect("no fault yet");

    let set = broker
        .faults
        .set(&fault(Target::ClientPrefix("shop.order".into()), Fault::Error { api: Api::Produce, error: KafkaError::NotLeaderOrFollower }))
        .await
        .unwrap();
    // The error code itself, on the wire, for the faulted client only.
    assert_eq!(raw_produce(&broker.bootstrap(), "shop.order/raw", "produce-faults"), i16::from(ErrorCode::NotLeaderOrFollower));
    assert_ne!(raw_produce(&broker.bootstrap(), "shop.mypage/raw", "produce-faults"), i16::from(ErrorCode::NotLeaderOrFollower));
    // librdkafka refreshes metadata and retries NOT_LEADER_OR_FOLLOWER until the message times out.
    let err = send(&faulty, "produce-faults", "during").await.expect_err("the faulted client's Produce must fail");
    assert_eq!(err, ClientError::MessageProduction(RDKafkaErrorCode::MessageTimedOut));
    send(&healthy, "produce-faults", "healthy").await.expect("another client is not faulted");

    // The kit's idempotent producer retries through the fault and delivers once it is cleared.
    let retrying: FutureProducer = settings.producer_config("shop.order/order-2").create().unwrap();
    let delivery = tokio::spawn(async move { send(&retrying, "produce-faults", "held").await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!delivery.is_finished(), "the retrying producer cannot deliver while the fault is set");
    let cleared = broker.faults.clear(set.id).await.unwrap();
    assert!(cleared.hits >= 4, "the fault answered the raw Produce, the failed one and the retries: {} hits", cleared.hits);
    delivery.await.unwrap().expect("delivered after the fault was cleared");
    send(&faulty, "produce-faults", "after").await.expect("cleared");
    assert!(broker.faults.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn heartbeat_errors_make_a_group_rebalance_while_set() {
    let broker = BrokerProcess::start();
    let settings = broker.topic("heartbeat-faults", 3).await;
    let member = Receiver::start(&settings, "heartbeats", "heartbeats-1");
    eventually(Duration::from_secs(30), "the member assigned", || member.rebalances.count() >= 1).await;

    let set = broker
        .faults
        .set(&fault(Target::Group("heartbeats".into()), Fault::Error { api: Api::Heartbeat, error: KafkaError::RebalanceInProgress }))
        .await
        .unwrap();
    let before = member.rebalances.count();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = member.rebalances.count() - before;
    let cleared = broker.faults.clear(set.id).await.unwrap();
    assert!(during >= 2, "every heartbeat answered REBALANCE_IN_PROGRESS makes the member rejoin: {during} rebalances in 6 s");
    assert!(cleared.hits >= 2, "{} hits", cleared.hits);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = member.rebalances.count();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(member.rebalances.count(), settled, "no rebalance once cleared");
}

#[tokio::test]
async fn a_fetch_stall_slows_one_consumer_while_set() {
    let broker = BrokerProcess::start();
    let settings = broker.topic("fetch-faults", 1).await;
    let ticker = Ticker::start(&broker.bootstrap(), "fetch-faults", Duration::from_millis(100));
    let slow = Receiver::start(&settings, "slow", "slow-1");
    let fast = Receiver::start(&settings, "fast", "fast-1");
    eventually(Duration::from_secs(30), "both consuming", || slow.received() > 10 && fast.received() > 10).await;

    let set = broker.faults.set(&fault(Target::Group("slow".into()), Fault::StallFetch { delay: Duration::from_secs(2) })).await.unwrap();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (slow_gap, fast_gap) = (slow.longest_gap(start, Instant::now()), fast.longest_gap(start, Instant::now()));
    let cleared = broker.faults.clear(set.id).await.unwrap();
    println!("while stalled: slow's longest gap {slow_gap:?}, fast's {fast_gap:?}, {} fetches held", cleared.hits);
    assert!(slow_gap >= Duration::from_millis(1800), "the stalled consumer's fetches were not held: longest gap {slow_gap:?}");
    assert!(fast_gap < Duration::from_secs(1), "another group's consumer must not be stalled: {fast_gap:?}");
    assert!(cleared.hits >= 2, "{} fetches held", cleared.hits);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let slow_gap = slow.longest_gap(start, Instant::now());
    assert!(slow_gap < Duration::from_secs(1), "cleared, the consumer is fast again: {slow_gap:?}");
    ticker.stop();
}

fn committed(consumer: &StreamConsumer, topic: &str) -> Offset {
    let committed = consumer.committed(Duration::from_secs(5)).unwrap();
    committed.find_partition(topic, 0).map(|p| p.offset()).unwrap_or(Offset::Invalid)
}

#[tokio::test]
async fn offset_commits_fail_while_set() {
    let broker = BrokerProcess::start();
    let settings = broker.topic("commit-faults", 1).await;
    let producer: FutureProducer = settings.producer_config("committer-producer").create().unwrap();
    for n in 0..10 {
        send(&producer, "commit-faults", &n.to_string()).await.unwrap();
    }
    let consumer: StreamConsumer = settings.consumer_config("committer", "committer-1").set("enable.auto.commit", "false").create().unwrap();
    consumer.subscribe(&["commit-faults"]).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.expect("a message").unwrap();
    assert_eq!(message.offset(), 0);
    let at = |offset| {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset("commit-faults", 0, Offset::Offset(offset)).unwrap();
        list
    };
    consumer.commit(&at(1), CommitMode::Sync).expect("no fault yet");
    assert_eq!(committed(&consumer, "commit-faults"), Offset::Offset(1));

    let set = broker
        .faults
        .set(&fault(Target::Group("committer".into()), Fault::Error { api: Api::OffsetCommit, error: KafkaError::UnknownServerError }))
        .await
        .unwrap();
    let failed = consumer.commit(&at(5), CommitMode::Sync);
    assert!(failed.is_err(), "the commit must fail while the fault is set: {failed:?}");
    assert_eq!(committed(&consumer, "commit-faults"), Offset::Offset(1), "nothing was committed");
    let cleared = broker.faults.clear(set.id).await.unwrap();
    assert!(cleared.hits >= 1);

    consumer.commit(&at(5), CommitMode::Sync).expect("cleared");
    assert_eq!(committed(&consumer, "commit-faults"), Offset::Offset(5));
}

#[tokio::test]
async fn a_forced_rebalance_makes_every_member_rejoin_once() {
    let broker = BrokerProcess::start();
    let settings = broker.topic("rebalance-faults", 3).await;
    let one = Receiver::start(&settings, "rebalanced", "rebalanced-1");
    eventually(Duration::from_secs(30), "the first member assigned", || one.rebalances.count() >= 1).await;
    let two = Receiver::start(&settings, "rebalanced", "rebalanced-2");
    eventually(Duration::from_secs(30), "both members assigned", || two.rebalances.count() >= 1 && one.rebalances.count() >= 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (one_before, two_before) = (one.rebalances.count(), two.rebalances.count());

    let set = broker.faults.set(&fault(Target::Group("rebalanced".into()), Fault::Rebalance)).await.unwrap();
    eventually(Duration::from_secs(20), "both members rejoined", || one.rebalances.count() > one_before && two.rebalances.count() > two_before).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let listed = broker.faults.list().await.unwrap();
    assert_eq!(listed[0].hits, 2, "each member told once: {listed:?}");
    let (one_after, two_after) = (one.rebalances.count(), two.rebalances.count());
    assert!(one_after - one_before <= 2 && two_after - two_before <= 2, "one rebalance, not a loop: {one_before}→{one_after}, {two_before}→{two_after}");
    broker.faults.clear(set.id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!((one.rebalances.count(), two.rebalances.count()), (one_after, two_after), "no rebalance once cleared");
}

#[tokio::test]
async fn the_fault_endpoint_refuses_bad_input_with_a_reason() {
    let broker = BrokerProcess::start();
    let base = format!("http://{}", broker.faults_addr());
    let http = stormproof::http_client().build().unwrap();
    let bad = http.post(format!("{base}/v1/faults")).bearer_auth(broker.token()).header("content-type", "application/json").body(r#"{"target":{"client":"c"},"fault":{"error":{"api":"Produce","error":"NOT_A_CODE"}}}"#).send().await.unwrap();
    assert!(bad.status().is_client_error(), "{}", bad.status());
    assert!(bad.text().await.unwrap().contains("NOT_A_CODE"));
    let missing = broker.faults.clear(42).await.unwrap_err();
    assert!(missing.to_string().contains("404") && missing.to_string().contains("no broker fault 42"), "{missing}");
    assert!(broker.faults.list().await.unwrap().is_empty());
}
