//! Network faults on the local platform's link proxies: each toxic against
//! a real TCP echo server, then on a real shop — latency on order → product
//! seen in order's answer time, and a partition between mypage and the
//! broker that cuts mypage only (its lag grows while delivery's stays at
//! 0) and, once cleared, is caught up exactly.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Shop, eventually, mypage_shows};
use stormproof::platform::local::link::LinkTable;
use stormproof::platform::local::{ControlClient, RunState};
use stormproof::platform::network::{Direction, Link, Links, NetworkFault, Peer, Toxic};
use stormproof::platform::{Platform, PlatformError};
use stormproof::proxy::InProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on loopback: writes back what it reads, closes on EOF.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

fn link() -> Link {
    Link { from: Peer::parse("order"), to: Peer::parse("product") }
}

fn on_link(toxic: Toxic) -> NetworkFault {
    NetworkFault { links: Links::Ends { from: Some(Peer::parse("order")), to: Some(Peer::parse("product")) }, toxic, direction: Direction::Both, probability: 1.0, expires_after: None }
}

/// A proxied echo: the table, the proxy's address.
async fn proxied() -> (Arc<LinkTable>, SocketAddr) {
    let table = LinkTable::new();
    let addr = table.proxy(&link(), echo().await).unwrap();
    (table, addr)
}

/// Sends `data` and reads as much back within `within`: what came back,
/// and how the read ended (`None`: still open and silent).
async fn exchange(stream: &mut TcpStream, data: &[u8], within: Duration) -> (Vec<u8>, Option<std::io::Result<usize>>) {
    let _ = stream.write_all(data).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    while got.len() < data.len() {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) => return (got, Some(Ok(0))),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(err)) => return (got, Some(Err(err))),
        }
    }
    let n = got.len();
    (got, Some(Ok(n)))
}

fn reset(end: &Option<std::io::Result<usize>>) -> bool {
    matches!(end, Some(Err(err)) if err.kind() == ErrorKind::ConnectionReset)
}

/// How a connection ends when read without writing (`None`: still open).
async fn ends(stream: &mut TcpStream) -> Option<std::io::Result<usize>> {
    let mut buf = [0u8; 64];
    tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await.ok()
}

/// What a new connection sees at once: its first exchange.
async fn fresh(addr: SocketAddr) -> (Vec<u8>, Option<std::io::Result<usize>>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    exchange(&mut stream, b"hello", Duration::from_millis(500)).await
}

#[tokio::test]
async fn with_no_fault_or_probability_0_a_proxy_passes_everything() {
    let (table, addr) = proxied().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let big: Vec<u8> = (0..60_000u32).map(|i| i as u8).collect();
    let (back, _) = exchange(&mut stream, &big, Duration::from_secs(5)).await;
    assert!(back == big, "{} of {} bytes came back intact", back.len(), big.len());
    let never = table.set(&NetworkFault { probability: 0.0, ..on_link(Toxic::Reset) }).unwrap();
    let (back, _) = exchange(&mut stream, b"still here", Duration::from_secs(2)).await;
    assert_eq!(back, b"still here");
    assert_eq!(fresh(addr).await.0, b"hello", "a new connection is not picked either");
    assert_eq!(table.list()[0].hits, 0, "probability 0 touched nothing");
    assert_eq!(table.clear(never.id).unwrap().hits, 0);
    assert!(table.list().is_empty());
}

#[tokio::test]
async fn latency_delays_each_direction_and_counts_the_connection() {
    let (table, addr) = proxied().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let set = table.set(&NetworkFault { direction: Direction::Downstream, ..on_link(Toxic::Latency { latency: Duration::from_millis(300), jitter: Duration::from_millis(50) }) }).unwrap();
    let start = Instant::now();
    let (back, _) = exchange(&mut stream, b"ping", Duration::from_secs(3)).await;
    let took = start.elapsed();
    assert_eq!(back, b"ping");
    assert!(took >= Duration::from_millis(250), "the open connection was slowed: {took:?}");
    assert!(table.clear(set.id).unwrap().hits == 1);
    // Both ways: the delay is paid on the way there and back.
    let (table, addr) = proxied().await;
    table.set(&on_link(Toxic::Latency { latency: Duration::from_millis(200), jitter: Duration::ZERO })).unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let (back, _) = exchange(&mut stream, b"pong", Duration::from_secs(3)).await;
    assert_eq!(back, b"pong");
    assert!(start.elapsed() >= Duration::from_millis(400), "{:?}", start.elapsed());
    assert_eq!(table.list()[0].hits, 1, "one connection acted on");
    table.clear_all();
    let start = Instant::now();
    assert_eq!(exchange(&mut stream, b"fast", Duration::from_secs(1)).await.0, b"fast");
    assert!(start.elapsed() < Duration::from_millis(100), "cleared: {:?}", start.elapsed());
}

#[tokio::test]
async fn reset_resets_open_and_new_connections() {
    let (table, addr) = proxied().await;
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut open, b"a", Duration::from_secs(1)).await.0, b"a");
    table.set(&on_link(Toxic::Reset)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let end = ends(&mut open).await;
    assert!(reset(&end), "the open connection was reset: {end:?}");
    let end = ends(&mut TcpStream::connect(addr).await.unwrap()).await;
    assert!(reset(&end), "a new connection is reset: {end:?}");
    assert_eq!(table.list()[0].hits, 2);
    table.clear_all();
    assert_eq!(fresh(addr).await.0, b"hello", "cleared: service is back");
}

#[tokio::test]
async fn a_blackhole_answers_nothing_and_closes_nothing() {
    let (table, addr) = proxied().await;
    let mut open = TcpStream::connect(addr).await.unwrap();
    table.set(&on_link(Toxic::Blackhole)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (back, end) = exchange(&mut open, b"anyone?", Duration::from_millis(700)).await;
    assert!(back.is_empty() && end.is_none(), "silent and open: {back:?} {end:?}");
    let (back, end) = fresh(addr).await;
    assert!(back.is_empty() && end.is_none(), "a new connection too: {back:?} {end:?}");
    assert_eq!(table.list()[0].hits, 2);
    table.clear_all();
    assert_eq!(fresh(addr).await.0, b"hello");
}

#[tokio::test]
async fn a_partition_closes_open_connections_and_refuses_new_ones() {
    let (table, addr) = proxied().await;
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut open, b"a", Duration::from_secs(1)).await.0, b"a");
    table.set(&NetworkFault { links: Links::Between { between: [Peer::parse("product"), Peer::parse("order")] }, ..on_link(Toxic::Partition) }).unwrap();
    let closed = ends(&mut open).await;
    assert!(matches!(closed, Some(Ok(0))), "the open connection was closed: {closed:?}");
    let end = ends(&mut TcpStream::connect(addr).await.unwrap()).await;
    assert!(reset(&end), "a new one is refused (reset at once): {end:?}");
    table.clear_all();
    assert_eq!(fresh(addr).await.0, b"hello");
}

#[tokio::test]
async fn limit_data_closes_after_its_bytes_and_bandwidth_paces() {
    let (table, addr) = proxied().await;
    table.set(&NetworkFault { direction: Direction::Downstream, ..on_link(Toxic::LimitData { bytes: 10 }) }).unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (back, end) = exchange(&mut stream, b"0123456789abcdef", Duration::from_secs(1)).await;
    assert_eq!(back, b"0123456789", "exactly 10 bytes passed");
    assert!(matches!(end, Some(Ok(0))) || reset(&end), "then closed: {end:?}");
    table.clear_all();
    table.set(&NetworkFault { direction: Direction::Downstream, ..on_link(Toxic::Bandwidth { bytes_per_second: 20_000 }) }).unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let (back, _) = exchange(&mut stream, &[7u8; 10_000], Duration::from_secs(3)).await;
    assert_eq!(back.len(), 10_000);
    assert!(start.elapsed() >= Duration::from_millis(450), "10 kB at 20 kB/s: {:?}", start.elapsed());
}

#[tokio::test]
async fn slow_close_holds_the_close_and_a_fault_expires_by_itself() {
    let (table, addr) = proxied().await;
    table.set(&NetworkFault { expires_after: Some(Duration::from_millis(1500)), ..on_link(Toxic::SlowClose { delay: Duration::from_millis(400) }) }).unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut stream, b"bye", Duration::from_secs(1)).await.0, b"bye");
    let start = Instant::now();
    stream.shutdown().await.unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(stream.read(&mut buf).await.unwrap(), 0);
    assert!(start.elapsed() >= Duration::from_millis(700), "the close waited on the way there and back: {:?}", start.elapsed());
    assert_eq!(table.list().len(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(table.list().is_empty(), "expired: {:?}", table.list());
}

/// Inside `up` (the gateway) a proxy is reached in memory, and through it a
/// target `up` serves in memory too (a stable address): no loopback hop,
/// the same faults.
#[tokio::test]
async fn a_proxy_reached_in_memory_passes_data_and_carries_its_links_faults() {
    let table = LinkTable::new();
    let stable = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let echoed = axum::Router::new().fallback(|body: String| async move { format!("echo {body}") });
    table.memory().serve(stable, echoed);
    let via = table.proxy(&link(), stable).unwrap();
    let mut caller = table.memory().dial(via).expect("the proxy is served in memory");
    let request = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nping";
    caller.write_all(request).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), caller.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("echo ping"), "through the proxy to the in-memory server: {answer}");

    table.set(&on_link(Toxic::Reset)).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(2), caller.read(&mut [0u8; 16])).await.expect("cut at once");
    assert!(matches!(end, Ok(0)), "a reset ends the in-memory connection (no RST in memory): {end:?}");
    let mut fresh = table.memory().dial(via).unwrap();
    fresh.write_all(request).await.ok();
    let end = tokio::time::timeout(Duration::from_secs(2), fresh.read(&mut [0u8; 16])).await.expect("cut at once");
    assert!(matches!(end, Ok(0) | Err(_)), "a new one too: {end:?}");
    assert_eq!(table.list()[0].hits, 2);
    table.clear_all();

    table.follow(&link(), &[]);
    assert!(table.memory().dial(via).is_none(), "a stopped proxy is not served in memory either");
}

#[tokio::test]
async fn a_fault_on_no_wired_link_or_malformed_is_invalid() {
    let (table, _) = proxied().await;
    let elsewhere = NetworkFault { links: Links::Ends { from: Some(Peer::Gateway), to: None }, ..on_link(Toxic::Reset) };
    let err = table.set(&elsewhere).unwrap_err();
    assert!(matches!(&err, PlatformError::Invalid(why) if why.contains("order → product")), "names the wired links: {err}");
    let err = table.set(&NetworkFault { probability: 2.0, ..on_link(Toxic::Reset) }).unwrap_err();
    assert!(matches!(err, PlatformError::Invalid(_)));
    assert!(matches!(table.clear(42), Err(PlatformError::Invalid(_))));
}

fn platform(shop: &Shop) -> ControlClient {
    ControlClient::new(&RunState::read(shop.dir.path()).unwrap())
}

/// Consumer lag of `group` on the shop's topic, read at the broker's own
/// listener (not through any link), as the chaos engine reads it.
fn lag(kafka: &str, group: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", kafka).set("group.id", group).set("enable.auto.commit", "false").set("log_level", "3").create().unwrap();
    let timeout = Duration::from_secs(5);
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..3 {
        list.add_partition("shop", partition);
    }
    let committed = consumer.committed_offsets(list, timeout).unwrap();
    (0..3)
        .map(|partition| {
            let (low, high) = consumer.fetch_watermarks("shop", partition, timeout).unwrap();
            let at = committed.find_partition("shop", partition).and_then(|e| e.offset().to_raw()).filter(|o| *o >= 0).unwrap_or(low);
            high - at
        })
        .sum()
}

async fn lags(shop: &Shop) -> (i64, i64) {
    let kafka = shop.state["kafka"].as_str().unwrap().to_string();
    tokio::task::spawn_blocking(move || (lag(&kafka, "shop.mypage"), lag(&kafka, "shop.delivery"))).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_on_a_real_shop_slow_order_and_cut_mypage_only() {
    let shop = Shop::up(&[]).await;
    let platform = platform(&shop);
    let links: Vec<String> = platform.set_network_fault(&NetworkFault { links: Links::Ends { from: Some(Peer::parse("nobody")), to: None }, ..on_link(Toxic::Reset) }).await.map(|_| vec![]).unwrap_or_else(|err| vec![err.to_string()]);
    for wired in ["gateway → order", "order → product", "mypage → broker", "delivery → broker"] {
        assert!(links[0].contains(wired), "{wired} is wired: {links:?}");
    }

    // order → product: 400 ms on product's answers, inside order's 1 s timeout.
    shop.place_orders(1, "latency").await;
    let start = Instant::now();
    shop.place_orders(1, "latency").await;
    let before = start.elapsed();
    let slow = NetworkFault { direction: Direction::Downstream, ..on_link(Toxic::Latency { latency: Duration::from_millis(400), jitter: Duration::ZERO }) };
    let set = platform.set_network_fault(&slow).await.unwrap();
    assert_eq!(set.on, vec![link()]);
    let start = Instant::now();
    shop.place_orders(1, "latency").await;
    let during = start.elapsed();
    assert!(during >= Duration::from_millis(400) && during > before, "order waited on product: {during:?} (before {before:?})");
    let cleared = platform.clear_network_fault(set.id).await.unwrap();
    assert!(cleared.hits >= 1, "{cleared:?}");
    let start = Instant::now();
    shop.place_orders(1, "latency").await;
    assert!(start.elapsed() < Duration::from_millis(400), "restored: {:?}", start.elapsed());

    // mypage cut from the broker: the others keep consuming.
    let before = shop.place_orders(3, "cut").await;
    mypage_shows(&shop, "cut", &before, "DeliveryStarted", 2).await;
    let cut = NetworkFault { links: Links::Between { between: [Peer::parse("mypage"), Peer::Broker] }, ..on_link(Toxic::Partition) };
    let set = platform.set_network_fault(&cut).await.unwrap();
    assert_eq!(set.on, vec![Link { from: Peer::parse("mypage"), to: Peer::Broker }]);
    let start = Instant::now();
    let during = shop.place_orders(10, "cut").await;
    let (mypage, delivery) = eventually(Duration::from_secs(30), "delivery caught up while mypage lags", || async {
        let (mypage, delivery) = lags(&shop).await;
        if delivery == 0 && mypage >= 20 { Ok((mypage, delivery)) } else { Err(format!("mypage {mypage}, delivery {delivery}")) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (still, delivery_still) = lags(&shop).await;
    assert!(still >= mypage && delivery_still == 0, "mypage stays behind ({still}), delivery flat at 0 ({delivery_still})");
    println!("partitioned: mypage lag {mypage} → {still}, delivery {delivery} → {delivery_still}");
    let cleared = platform.clear_network_faults().await.unwrap();
    assert!(cleared[0].hits >= 1, "mypage's connections were cut: {cleared:?}");
    let cut_for = start.elapsed();
    let clear = Instant::now();
    let mut all = before.clone();
    all.extend(&during);
    mypage_shows(&shop, "cut", &all, "DeliveryStarted", 2).await;
    let caught_up = eventually(Duration::from_secs(60), "mypage's lag back to 0", || async {
        match lags(&shop).await.0 {
            0 => Ok(clear.elapsed()),
            n => Err(format!("{n} behind")),
        }
    })
    .await;
    println!("mypage cut for {cut_for:?}; caught up {caught_up:?} after the clear, every order once with both events");
    assert!(platform.network_faults().await.unwrap().is_empty());
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_links_off_there_is_no_link_to_fault() {
    let shop = Shop::up(&["--links", "off"]).await;
    let err = platform(&shop).set_network_fault(&on_link(Toxic::Reset)).await.unwrap_err();
    assert!(matches!(&err, PlatformError::Invalid(why) if why.contains("--links off")), "{err}");
    shop.place_orders(1, "direct").await;
    shop.down();
}
