//! A reading taken every few milliseconds on a thread of its own, so that
//! a busy (or blocked) async runtime does not stretch the intervals: a
//! process's RSS, Redis's command counters, a replication barrier.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running sampler; [`Sampler::finish`] stops it and hands the samples
/// over, each with when it was taken.
pub struct Sampler<T: Send + 'static> {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Instant, T)>>>,
    handle: std::thread::JoinHandle<()>,
}

impl<T: Send + 'static> Sampler<T> {
    /// Calls `read` every `every` (at most `max` times) until stopped;
    /// keeps what it returns (None: nothing to keep this time).
    pub fn start(
        every: Duration,
        max: usize,
        mut read: impl FnMut() -> Option<T> + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let handle = std::thread::spawn({
            let (stop, samples) = (stop.clone(), samples.clone());
            move || {
                for _ in 0..max {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Some(v) = read() {
                        let mut samples = samples.lock().expect("samples lock");
                        samples.push((Instant::now(), v));
                    }
                    std::thread::sleep(every);
                }
            }
        });
        Sampler {
            stop,
            samples,
            handle,
        }
    }

    /// Stops sampling (after the reading under way) and returns every sample.
    pub fn finish(self) -> Vec<(Instant, T)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the sampler did not panic");
        std::mem::take(&mut *self.samples.lock().expect("samples lock"))
    }
}

impl<T: Clone + Send + 'static> Sampler<T> {
    /// The samples so far (a copy; the sampler keeps going).
    pub fn snapshot(&self) -> Vec<(Instant, T)> {
        self.samples.lock().expect("samples lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_until_finished_keeping_only_readings() {
        let mut n = 0u32;
        let sampler = Sampler::start(Duration::from_millis(1), 1_000, move || {
            n += 1;
            (n != 2).then_some(n)
        });
        while sampler.snapshot().len() < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let samples = sampler.finish();
        assert!(samples.len() >= 3);
        assert!(
            samples.iter().all(|(_, v)| *v != 2),
            "the second reading kept nothing"
        );
        assert!(samples.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn stops_after_max_readings() {
        let sampler = Sampler::start(Duration::ZERO, 5, || Some(()));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(sampler.finish().len(), 5);
    }
}
