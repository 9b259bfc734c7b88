//! Log output: lines go through a queue to a thread of their own, which writes them to standard
//! error, many lines per write. A line waits at most 10 ms before it is written;
//! [`LogGuard`] flushes what is left at exit. Writing each line with its own system call from
//! the request's thread cost about a tenth of a simple request's time (see BENCHMARKS.md).

use std::io::{self, Write};
use std::sync::mpsc;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Lines queued before a logging request thread waits for the writer: the queue absorbs bursts
/// but never grows without bound.
const QUEUE_LINES: usize = 16_384;

/// How long the writer lets lines gather after the first of a burst: the most a line waits.
const GATHER: Duration = Duration::from_millis(10);

enum Message {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// Makes one [`Line`] per log event, for `tracing_subscriber`.
#[derive(Clone)]
pub struct LogWriter {
    queue: mpsc::SyncSender<Message>,
}

/// Flushes every queued line when dropped: hold it until the process ends.
pub struct LogGuard {
    queue: mpsc::SyncSender<Message>,
}

/// Starts the writer thread, writing to `out`.
pub fn start(out: impl Write + Send + 'static) -> io::Result<(LogWriter, LogGuard)> {
    let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
    std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || write_lines(&lines, out))?;
    Ok((
        LogWriter {
            queue: queue.clone(),
        },
        LogGuard { queue },
    ))
}

fn write_lines(lines: &mpsc::Receiver<Message>, out: impl Write) {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    // Output errors are ignored: there is nowhere left to report them.
    let handle = |message, out: &mut io::BufWriter<_>| match message {
        Message::Line(line) => {
            let _ = out.write_all(&line);
        }
        Message::Flush(done) => {
            let _ = out.flush();
            let _ = done.send(());
        }
    };
    while let Ok(message) = lines.recv() {
        handle(message, &mut out);
        // Let a burst gather: waking this thread and writing once per line cost more than
        // formatting the line (measured: a fifth of the server's time at full load).
        std::thread::sleep(GATHER);
        while let Ok(message) = lines.try_recv() {
            handle(message, &mut out);
        }
        let _ = out.flush();
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (done, flushed) = mpsc::channel();
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(Duration::from_secs(2));
        }
    }
}

/// One log line, queued whole when the formatter is done with it.
pub struct Line<'a> {
    buffer: Vec<u8>,
    queue: &'a mpsc::SyncSender<Message>,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            let _ = self
                .queue
                .send(Message::Line(std::mem::take(&mut self.buffer)));
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        // The formatter writes a whole line at once: an empty buffer allocates it exactly.
        Line {
            buffer: Vec::new(),
            queue: &self.queue,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// An output the test can read back, counting the writes it gets.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut out = self.0.lock().unwrap();
            out.0.extend_from_slice(bytes);
            out.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_in_order_and_batched_once_the_guard_is_dropped() {
        let out = Shared::default();
        let (writer, guard) = start(out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for line in 0..1000 {
                        let mut event = writer.make_writer();
                        // A line may come in pieces; it is queued whole.
                        write!(event, "thread {thread} ").unwrap();
                        writeln!(event, "line {line}").unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let (bytes, writes) = out.0.lock().unwrap().clone();
        assert!(
            writes < 400,
            "{writes} writes for 4000 lines: lines are not batched"
        );
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 4000);
        for thread in 0..4 {
            let own: Vec<_> = text
                .lines()
                .filter(|line| line.starts_with(&format!("thread {thread} ")))
                .collect();
            let expected: Vec<_> = (0..1000)
                .map(|line| format!("thread {thread} line {line}"))
                .collect();
            assert_eq!(own, expected);
        }
    }
}
