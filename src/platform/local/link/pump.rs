//! One direction of a proxied connection: reads a chunk, applies its flow
//! (a delay line for latency, a pace for bandwidth, a byte budget for
//! limit_data) and writes it on. With a plain flow it is a copy loop.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::effects::{Effects, Flow, Side};

const CHUNK: usize = 32 * 1024;

/// Chunks waiting out their latency, in order.
#[derive(Default)]
struct DelayLine {
    chunks: VecDeque<(Instant, Vec<u8>)>,
    last: Option<Instant>,
}

impl DelayLine {
    /// Queues `data` to leave after `latency` ± `jitter`, never before the
    /// chunk ahead of it (order is kept).
    fn push(&mut self, data: &[u8], latency: Duration, jitter: Duration) {
        let spread = jitter.as_secs_f64() * (fastrand::f64() * 2.0 - 1.0);
        let delay = Duration::from_secs_f64((latency.as_secs_f64() + spread).max(0.0));
        let due = (Instant::now() + delay).max(self.last.unwrap_or_else(Instant::now));
        self.last = Some(due);
        self.chunks.push_back((due, data.to_vec()));
    }

    fn due(&self) -> Option<Instant> {
        self.chunks.front().map(|(due, _)| *due)
    }
}

/// Bytes passed under a limit, and when the pace lets the next ones go.
#[derive(Default)]
struct Meter {
    passed: u64,
    free_at: Option<Instant>,
}

impl Meter {
    /// Writes `data` as `flow` allows; `Err` once the limit is reached.
    async fn write<W: AsyncWrite + Unpin>(&mut self, to: &mut W, mut data: &[u8], flow: &Flow) -> io::Result<()> {
        let over = flow.limit.is_some_and(|limit| self.passed + data.len() as u64 >= limit);
        if let Some(limit) = flow.limit {
            data = &data[..(limit.saturating_sub(self.passed) as usize).min(data.len())];
        }
        match flow.bandwidth {
            None => to.write_all(data).await?,
            Some(rate) => {
                // Slices of a twentieth of a second's worth, each paid for in time.
                for piece in data.chunks((rate as usize / 20).max(1)) {
                    let at = self.free_at.map_or_else(Instant::now, |t| t.max(Instant::now()));
                    tokio::time::sleep_until(at).await;
                    to.write_all(piece).await?;
                    self.free_at = Some(at + Duration::from_secs_f64(piece.len() as f64 / rate as f64));
                }
            }
        }
        self.passed += data.len() as u64;
        if over {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "limit_data reached"));
        }
        Ok(())
    }
}

/// Pumps `from` into `to` until `from` ends (then shuts `to` down, after a
/// slow close's delay) or either fails.
pub(super) async fn pump<R, W>(from: &mut R, to: &mut W, side: Side, mut effects: watch::Receiver<Effects>) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut now = *effects.borrow_and_update();
    let mut flow = now.flow(side);
    let mut line = DelayLine::default();
    let mut meter = Meter::default();
    let mut open = true;
    while open || !line.chunks.is_empty() {
        let due = line.due();
        tokio::select! {
            biased;
            Ok(()) = effects.changed() => {
                now = *effects.borrow_and_update();
                let next = now.flow(side);
                if flow.limit.is_none() && next.limit.is_some() {
                    meter.passed = 0;
                }
                flow = next;
            }
            // Built only when polled: a plain copy pays for no timer.
            _ = async { tokio::time::sleep_until(due.expect("guarded")).await }, if due.is_some() => {
                if let Some((_, chunk)) = line.chunks.pop_front() {
                    meter.write(to, &chunk, &flow).await?;
                }
            }
            read = from.read(&mut buf), if open => match read? {
                0 => open = false,
                n => match flow.latency {
                    Some((latency, jitter)) => line.push(&buf[..n], latency, jitter),
                    None if line.chunks.is_empty() => meter.write(to, &buf[..n], &flow).await?,
                    // Latency was cleared while chunks wait: they keep their order.
                    None => line.push(&buf[..n], Duration::ZERO, Duration::ZERO),
                },
            },
        }
    }
    if let Some(delay) = now.slow_close {
        tokio::time::sleep(delay).await;
    }
    to.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_limit_lets_exactly_its_bytes_through_then_fails() {
        let flow = Flow { limit: Some(10), ..Flow::default() };
        let mut out = Vec::new();
        let mut meter = Meter::default();
        meter.write(&mut out, b"0123456", &flow).await.unwrap();
        assert!(meter.write(&mut out, b"789abc", &flow).await.is_err());
        assert_eq!(out, b"0123456789");
    }

    #[tokio::test(start_paused = true)]
    async fn bandwidth_paces_the_bytes() {
        let flow = Flow { bandwidth: Some(1000), ..Flow::default() };
        let (mut out, mut meter, start) = (Vec::new(), Meter::default(), Instant::now());
        meter.write(&mut out, &[0; 2000], &flow).await.unwrap();
        meter.write(&mut out, &[0; 100], &flow).await.unwrap();
        // 2100 bytes at 1000 B/s: the last slice goes out after 2 s.
        assert!(start.elapsed() >= Duration::from_millis(2000), "{:?}", start.elapsed());
    }
}
