//! In-process tests of the load engine against local servers (127.0.0.1:0).

mod common_siege;

use std::time::{Duration, Instant};

use clap::Parser;
use common_siege::{Behavior, closed_port, start};
use stormproof::cli::SiegeArgs;
use stormproof::load::{LoadPlan, LoadSummary, RunHooks, StopReason, Target, run};

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: SiegeArgs,
}

/// Builds a plan from siege's flags, exactly as the CLI does.
fn plan(args: &[&str]) -> LoadPlan {
    let mut v = vec!["siege"];
    v.extend_from_slice(args);
    Wrap::try_parse_from(v).expect("flags parse").args.to_plan().expect("plan is valid")
}

async fn go(args: &[&str]) -> LoadSummary {
    run(plan(args), RunHooks::default()).await.expect("run")
}

const SEQ: [u16; 8] = [200, 200, 200, 200, 404, 404, 500, 500];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siege_compat_counts_the_scripted_sequence_as_siege_4_0_7() {
    let server = start(Behavior::Script(SEQ.to_vec())).await;
    let s = go(&["-c", "1", "-r", "8", "--siege-compat", &server.url("/")]).await;
    assert_eq!(server.requests(), 8);
    assert_eq!(s.transactions(), 6);
    assert_eq!(s.successful_transactions(), 4);
    assert_eq!(s.failed_transactions(), 2);
    assert_eq!(format!("{:.2}", s.availability()), "75.00");
    assert_eq!(s.figures.failures.get("http 500"), Some(&2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_counting_fails_every_status_from_400() {
    let server = start(Behavior::Script(SEQ.to_vec())).await;
    let s = go(&["-c", "1", "-r", "8", &server.url("/")]).await;
    assert_eq!((s.transactions(), s.successful_transactions(), s.failed_transactions()), (4, 4, 4));
    assert_eq!(s.availability(), 50.0);
    assert_eq!(s.figures.status_codes.get(&404), Some(&2));
    assert_eq!(s.figures.failures.get("http 404"), Some(&2));
    assert_eq!(s.figures.failures.get("http 500"), Some(&2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reps_send_exactly_users_times_reps() {
    let server = start(Behavior::Script(vec![])).await;
    let s = go(&["-c", "7", "-r", "13", "-b", &server.url("/x")]).await;
    assert_eq!(server.requests(), 91);
    assert_eq!(s.figures.requests, 91);
    assert_eq!(s.transactions(), 91);
    assert_eq!(s.stopped_by, StopReason::Completed);
    assert_eq!(s.figures.bytes, 91 * 2);
    // keep-alive: one connection per user
    assert_eq!(server.connections(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keepalive_opens_a_connection_per_request() {
    let server = start(Behavior::Script(vec![])).await;
    let s = go(&["-c", "2", "-r", "10", "--no-keepalive", &server.url("/")]).await;
    assert_eq!(s.transactions(), 20);
    assert_eq!(server.connections(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connections_closed_by_the_server_are_replaced_not_failed() {
    let server = start(Behavior::CloseIdle).await;
    // The random delay (0..0.5 s) lets the server's FIN arrive before the
    // next request, which must then go on a new connection.
    let s = go(&["-c", "2", "-r", "4", "-d", "0.5", &server.url("/")]).await;
    assert_eq!(s.failed_transactions(), 0, "{:?}", s.figures.failures);
    assert_eq!(s.transactions(), 8);
    assert_eq!(server.requests(), 8);
    assert_eq!(server.connections(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_walks_the_url_list_once_per_user() {
    let server = start(Behavior::FailPrefix).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("urls.txt");
    std::fs::write(
        &file,
        format!("H={}\nhttp://$(H)/a\nhttp://$(H)/fail POST {{\"x\":1}}\nhttp://$(H)/a\n", server.addr),
    )
    .unwrap();
    let s = go(&["-c", "3", "-r", "once", "-f", file.to_str().unwrap()]).await;
    assert_eq!(server.requests(), 9);
    assert_eq!(s.routes.len(), 2);
    let a = s.route("GET /a").unwrap();
    assert_eq!((a.figures.transactions, a.figures.failed), (6, 0));
    let f = s.route("POST /fail").unwrap();
    assert_eq!((f.figures.transactions, f.figures.failed), (0, 3));
    assert_eq!(f.figures.availability(), 0.0);
    assert_eq!(f.between(0, s.timeline.len()).failed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_order_reaches_every_url() {
    let server = start(Behavior::FailPrefix).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("urls.txt");
    std::fs::write(&file, format!("http://{0}/a\nhttp://{0}/fail\n", server.addr)).unwrap();
    let s = go(&["-c", "2", "-r", "100", "-i", "-f", file.to_str().unwrap()]).await;
    assert_eq!(s.figures.requests, 200);
    assert!(s.route("GET /a").unwrap().figures.requests > 20);
    assert!(s.route("GET /fail").unwrap().figures.requests > 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_runs_last_the_asked_time() {
    let server = start(Behavior::Slow(Duration::from_millis(5))).await;
    let t0 = Instant::now();
    let s = go(&["-c", "4", "-t", "2S", &server.url("/")]).await;
    let wall = t0.elapsed();
    assert!(s.elapsed >= Duration::from_secs(2), "{:?}", s.elapsed);
    assert!(wall < Duration::from_secs(6), "{wall:?}");
    assert_eq!(s.stopped_by, StopReason::Duration);
    assert!(s.transactions() > 0);
    assert!(s.timeline.len() >= 2 && s.timeline.len() <= 3, "{}", s.timeline.len());
    assert_eq!(s.timeline.iter().map(|p| p.counts.requests).sum::<u64>(), s.figures.requests);
    for p in s.timeline.iter().filter(|p| p.counts.requests > 0) {
        // the server answers after 5 ms: each second's percentiles say so
        assert!(p.p50_us >= 4_000 && p.p99_us >= p.p50_us, "{p:?}");
        assert!(p.availability == 100.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_is_not_counted_in_response_time() {
    let server = start(Behavior::Script(vec![])).await;
    let t0 = Instant::now();
    let s = go(&["-c", "2", "-r", "4", "-d", "0.4", &server.url("/")]).await;
    assert_eq!(s.transactions(), 8);
    // 4 random delays of up to 0.4 s each per user; none of it is response time.
    // Counted, the delays would make the mean about 0.2 s.
    assert!(s.response_time() < 0.1, "{}", s.response_time());
    assert!(s.longest_transaction() < 0.3, "{}", s.longest_transaction());
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_are_failures_with_a_reason() {
    let server = start(Behavior::Reset).await;
    let s = go(&["-c", "2", "-r", "5", &server.url("/")]).await;
    assert_eq!(s.figures.requests, 10);
    assert_eq!(s.failed_transactions(), 10);
    assert_eq!(s.transactions(), 0);
    let reasons: u64 = s
        .figures
        .failures
        .iter()
        .filter(|(k, _)| k.as_str() == "connection reset" || k.as_str() == "connection closed before response")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(reasons, 10, "{:?}", s.figures.failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_yields_timeouts_not_a_hang() {
    let server = start(Behavior::Hang).await;
    let t0 = Instant::now();
    let s = go(&["-c", "3", "-t", "2S", "--timeout", "300ms", &server.url("/")]).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(s.figures.failures.get("timeout").copied().unwrap_or(0) >= 3, "{:?}", s.figures.failures);
    assert_eq!(s.transactions(), 0);
    assert_eq!(s.availability(), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_timeout_a_silent_server_ends_at_t_with_unfinished_requests() {
    let server = start(Behavior::Hang).await;
    let t0 = Instant::now();
    let s = go(&["-c", "3", "-t", "1S", &server.url("/")]).await;
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_eq!(s.figures.requests, 0);
    assert_eq!(s.figures.unfinished, 3);
    assert!(s.figures.unfinished_longest_us >= 900_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_reported() {
    let addr = closed_port();
    let s = go(&["-c", "2", "-r", "3", &format!("http://{addr}/")]).await;
    assert_eq!(s.figures.failures.get("connection refused"), Some(&6), "{:?}", s.figures.failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_paces_requests() {
    let server = start(Behavior::Script(vec![])).await;
    let s = go(&["-c", "10", "--rate", "100", "-t", "2S", &server.url("/")]).await;
    let n = s.figures.requests;
    assert!((150..=210).contains(&n), "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_with_reps_sends_users_times_reps() {
    let server = start(Behavior::Script(vec![])).await;
    let s = go(&["-c", "3", "-r", "5", "--rate", "200", &server.url("/")]).await;
    assert_eq!(s.figures.requests, 15);
    assert_eq!(server.requests(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_ends_an_endless_run() {
    let server = start(Behavior::Slow(Duration::from_millis(2))).await;
    let hooks = RunHooks::default();
    let cancel = hooks.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
    });
    let t0 = Instant::now();
    let s = run(plan(&["-c", "4", &server.url("/")]), hooks).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(4));
    assert_eq!(s.stopped_by, StopReason::Cancelled);
    assert!(s.transactions() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_plan_without_clap() {
    let server = start(Behavior::Script(vec![])).await;
    let mut p = LoadPlan::new(vec![Target::get(&server.url("/lib")).unwrap()]);
    p.users = 2;
    p.stop = stormproof::load::Stop::Reps(3);
    let s = run(p.validate().unwrap(), RunHooks::default()).await.unwrap();
    assert_eq!(s.transactions(), 6);
    assert!(s.latency.p50_us > 0 && s.latency.p50_us <= s.latency.max_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_seconds_arrive_in_order_and_match_the_summary() {
    let server = start(Behavior::FailPrefix).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("urls.txt");
    std::fs::write(&file, format!("http://{0}/a\nhttp://{0}/fail\n", server.addr)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let hooks = RunHooks { seconds: Some(tx), ..RunHooks::default() };
    let s = run(plan(&["-c", "2", "-t", "3S", "-d", "0.01", "-f", file.to_str().unwrap()]), hooks).await.unwrap();
    let mut live = Vec::new();
    while let Some(sec) = rx.recv().await {
        live.push(sec);
    }
    assert!(live.len() >= 3, "{}", live.len());
    for (i, l) in live.iter().enumerate() {
        assert_eq!(l.point.second, i as u64);
        assert_eq!(l.routes.len(), 2);
        let p = &s.timeline[i];
        assert_eq!(l.point.counts, p.counts);
        assert_eq!((l.point.p50_us, l.point.p99_us), (p.p50_us, p.p99_us));
        assert_eq!(l.routes[1].transactions, 0);
    }
    let total: u64 = live.iter().map(|l| l.point.counts.requests).sum();
    assert_eq!(total, s.figures.requests);
}
