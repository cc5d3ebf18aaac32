//! The tar as a stream of bounded chunks, written on a blocking thread, for the daemon's
//! request body.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;

use super::{ContextError, ContextSpec, plan, write_tar};

/// The plan's tar as a stream of chunks, produced on a blocking thread through a bounded
/// channel (at most about 1 MiB in flight), ready for `bollard::body_try_stream`. Planning
/// happens before this returns, so a missing Dockerfile or a bad `.dockerignore` is an error
/// here; a failure while sending ends the stream with an `Err`.
pub fn tar_stream(
    spec: ContextSpec,
) -> Result<
    (
        String,
        impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static,
    ),
    ContextError,
> {
    let plan = plan(&spec)?;
    let name = plan.dockerfile_name.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let produce = move || {
        let sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_tar(&plan, &spec, sink)
            .and_then(|mut sink| sink.flush().map_err(ContextError::Write));
        if let Err(e) = result {
            // Nobody listens any more if the send fails; that is fine.
            let _ = tx.blocking_send(Err(io::Error::other(e)));
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(produce)),
        Err(_) => drop(std::thread::spawn(produce)),
    }
    Ok((name, TarStream { rx }))
}

const CHUNK: usize = 256 * 1024;

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the build context stream was dropped",
            )
        })
    }
}

struct TarStream {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
}

impl futures_util::Stream for TarStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::super::walk::tests::context;
    use super::*;
    use futures_util::Stream;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stream_carries_the_same_bytes_as_write_tar() {
        let big = "x".repeat(700_000);
        let (_t, spec) = context(None, &["a", "b/c"]);
        std::fs::write(spec.context_dir.join("big"), &big).unwrap();
        let expected = write_tar(&plan(&spec).unwrap(), &spec, Vec::new()).unwrap();
        let (name, mut stream) = tar_stream(spec).unwrap();
        assert_eq!(name, "Dockerfile");
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await
        {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= CHUNK);
            got.extend_from_slice(&chunk);
            chunks += 1;
        }
        assert!(chunks >= 3, "the tar arrives in bounded chunks");
        assert!(got == expected);
    }
}
