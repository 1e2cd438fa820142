//! tansu 0.6's three defects, each shown gone on nisshi 0.8 with the kit's
//! own client settings (idempotent producer, no local-timeout workaround,
//! the default `max.poll.interval.ms`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::harness::{BrokerProcess, Receiver, Ticker, eventually, metadata_answered, raw_produce};

/// Sends `ids` as messages keyed and valued by the id; returns the ids whose
/// delivery failed, with the errors.
async fn send_all(producer: &FutureProducer, topic: &str, ids: impl Iterator<Item = u32>) -> Vec<(u32, KafkaError)> {
    let sends = ids.map(|id| async move {
        let key = id.to_string();
        let result = producer.send(FutureRecord::to(topic).key(&key).payload(&key), Duration::from_secs(5)).await;
        result.err().map(|(err, _)| (id, err))
    });
    futures::future::join_all(sends).await.into_iter().flatten().collect()
}

/// tansu 0.6 ended its storage loop on the first failed request and then
/// answered nothing. Failed requests of four kinds, then normal service.
#[tokio::test]
async fn failed_requests_are_followed_by_normal_service() {
    let mut broker = BrokerProcess::start();
    let settings = broker.topic("after-failures", 3).await;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", broker.bootstrap()).create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));

    // 1. Storage refuses a topic that exists.
    let again = admin.create_topics([&NewTopic::new("after-failures", 3, TopicReplication::Fixed(1))], &options).await.unwrap();
    assert_eq!(again[0].as_ref().unwrap_err().1, RDKafkaErrorCode::TopicAlreadyExists);
    // 2. And a topic that does not exist.
    let deleted = admin.delete_topics(&["never-created"], &options).await.unwrap();
    assert!(deleted[0].is_err(), "deleting a missing topic must fail: {deleted:?}");
    // 3. A Produce to a missing topic is answered with an error code.
    let code = raw_produce(&broker.bootstrap(), "raw", "no-such-topic");
    assert_ne!(code, 0, "a Produce to a missing topic must fail");
    // 4. A frame that is not Kafka closes that connection only.
    let mut garbage = std::net::TcpStream::connect(broker.addr).unwrap();
    garbage.write_all(&[0, 0, 0, 8, 0x7f, 0x7f, 1, 2, 3, 4, 5, 6]).unwrap();
    garbage.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = garbage.read(&mut [0u8; 16]);

    assert!(metadata_answered(&broker.bootstrap(), Duration::from_secs(3)), "the broker must still answer Metadata");
    let producer: FutureProducer = settings.producer_config("after-failures").create().unwrap();
    assert!(send_all(&producer, "after-failures", 0..200).await.is_empty(), "every message is acknowledged after the failures");
    let receiver = Receiver::start(&settings, "after-failures", "after-failures-1");
    eventually(Duration::from_secs(30), "200 messages consumed", || receiver.received() >= 200).await;
    assert_eq!(receiver.received(), 200);
    assert!(broker.still_running(), "the broker process must not have exited:\n{}", broker.log());
}

/// tansu 0.6 panicked in its idempotence check after a restart. An
/// idempotent producer (the kit's settings) across two broker kills — one
/// long enough for messages to time out locally (librdkafka then bumps the
/// producer epoch, KIP-360), one with sends in flight — and a producer
/// restart: every message is stored exactly once.
#[tokio::test]
async fn an_idempotent_producer_survives_broker_and_producer_restarts() {
    let mut broker = BrokerProcess::start();
    let settings = broker.topic("idempotent", 3).await;
    let topic = "idempotent";
    let first: FutureProducer = settings.producer_config("idempotent-1").create().unwrap();
    assert!(send_all(&first, topic, 0..100).await.is_empty());

    // Down for longer than message.timeout.ms (10 s): the sends time out locally.
    broker.kill();
    let timed_out = send_all(&first, topic, 100..120).await;
    assert_eq!(timed_out.len(), 20, "with the broker down every send times out: {timed_out:?}");
    assert!(timed_out.iter().all(|(_, err)| matches!(err, KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut))), "{timed_out:?}");
    broker.restart();
    // The outbox sends what timed out again; the producer goes on with a bumped epoch.
    let failed = send_all(&first, topic, 100..170).await;
    assert!(failed.is_empty(), "after the restart the same producer delivers: {failed:?}\n{}", broker.log());
    drop(first);

    // A restarted producer, and a broker killed while its sends are in flight.
    let second: FutureProducer = settings.producer_config("idempotent-2").create().unwrap();
    let sending = {
        let producer = second.clone();
        tokio::spawn(async move {
            let mut sends = Vec::new();
            for id in 170..470u32 {
                let producer = producer.clone();
                sends.push(tokio::spawn(async move {
                    let key = id.to_string();
                    producer.send(FutureRecord::to(topic).key(&key).payload(&key), Duration::from_secs(5)).await.err().map(|(err, _)| (id, err))
                }));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut failed = Vec::new();
            for send in sends {
                failed.extend(send.await.unwrap());
            }
            failed
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    broker.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.restart();
    let failed = sending.await.unwrap();
    assert!(failed.is_empty(), "sends in flight across the kill are delivered once the broker is back: {failed:?}");
    assert_eq!(broker.starts, 3);

    let receiver = Receiver::start(&settings, "idempotent-check", "idempotent-check-1");
    eventually(Duration::from_secs(60), "470 messages consumed", || receiver.received() >= 470).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
    for payload in receiver.payloads() {
        *counts.entry(payload.parse().unwrap()).or_default() += 1;
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "an idempotent producer must not duplicate: {duplicated:?}");
    assert_eq!(counts.len(), 470, "every message stored: missing {:?}", (0..470).filter(|id| !counts.contains_key(id)).collect::<Vec<_>>());
    assert!(metadata_answered(&broker.bootstrap(), Duration::from_secs(3)));
    assert!(broker.still_running(), "{}", broker.log());
}

/// tansu 0.6 held a JoinGroup for the whole rebalance timeout
/// (`max.poll.interval.ms`, 300 s by default) and served other requests
/// slowly meanwhile. Members join two live groups, with the default
/// timeout: another group's consumer keeps receiving, and each rebalance
/// ends once its members have rejoined.
#[tokio::test]
async fn members_joining_live_groups_stall_neither_the_broker_nor_their_group() {
    let broker = BrokerProcess::start();
    let settings = broker.topic("live", 3).await;
    let ticker = Ticker::start(&broker.bootstrap(), "live", Duration::from_millis(20));
    let watcher = Receiver::start(&settings, "watcher", "watcher-1");
    let first = Receiver::start(&settings, "joined", "joined-1");
    eventually(Duration::from_secs(30), "both groups consuming", || watcher.received() > 50 && first.received() > 50).await;

    let joined_at = Instant::now();
    let second = Receiver::start(&settings, "joined", "joined-2");
    eventually(Duration::from_secs(30), "the new member assigned and consuming", || second.received() > 0).await;
    let rebalance = second.rebalances.first().expect("the new member was assigned").duration_since(joined_at);
    // Let the first member's own rebalance settle before measuring it.
    eventually(Duration::from_secs(30), "the first member consuming after the rebalance", || {
        first.arrivals.lock().unwrap().last().is_some_and(|(at, _)| *at > joined_at + rebalance)
    })
    .await;
    let settled = Instant::now();

    let watcher_gap = watcher.longest_gap(joined_at, settled);
    let first_gap = first.longest_gap(joined_at, settled);
    println!("rebalance {rebalance:?}; watcher's longest gap {watcher_gap:?}; first member's {first_gap:?}");
    assert!(watcher_gap < Duration::from_secs(2), "another group's consumer stalled for {watcher_gap:?} while a member joined");
    assert!(rebalance < Duration::from_secs(20), "the join took {rebalance:?}: it waited for the rebalance timeout");
    assert!(first_gap < Duration::from_secs(20), "the live member was stalled for {first_gap:?}");
    assert!(first.rebalances.count() >= 2, "the live member rebalanced (assigned at start and after the join)");
    ticker.stop();
}
