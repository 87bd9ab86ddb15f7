//! The WASI calls a language's runtime makes on its own (CPython's, which
//! reads its environment and arguments, its standard streams, the clocks
//! and randomness as it starts), answered by the host without the machine:
//!
//! - environment variables and arguments: none; no working directory;
//! - no preopened directory, so opening a file fails (Python: `OSError`)
//!   without a file-system call being made;
//! - standard input: at its end at once; standard output and error: into
//!   the host's log, line by line, at most [`OUTPUT_LIMIT`] bytes of each
//!   per event (the rest dropped, and counted in the log); no terminal;
//! - the wall clock: the event's `now`, plus what the monotonic clock has
//!   advanced; the monotonic clock: starts at 0 and advances only when the
//!   guest waits; a wait never sleeps: it moves the clock on at once, and a
//!   wait past the event's deadline stops the guest as the deadline does
//!   (WASI waits do not pass through the gate that bounds the contract's
//!   calls, so they are bounded here);
//! - randomness (secure and insecure): a stream seeded with the event's
//!   request id, so that a replay sees the same bytes without recording
//!   them; std's hash seed: fixed, as it was before any of this;
//! - everything else (sockets and name lookup, files through a descriptor,
//!   `exit`, ...) traps, which the event reports as `outside-contract`.
//!
//! Rust guests and Python guests are linked alike: one sandbox.

use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    Component, ComponentType, Linker, LinkerInstance, Lower, Resource, ResourceType, WasmList,
};
use wasmtime::{Engine, StoreContextMut, Trap};

/// The most bytes of standard output, and of standard error, one event
/// logs; the rest is dropped and counted.
pub const OUTPUT_LIMIT: usize = 64 << 10;

/// The most lines of standard output, and of standard error, one event
/// logs (each line is a log record): the rest is dropped and counted.
pub const LINE_LIMIT: usize = 1_000;

/// The longest line kept whole; a longer one is logged cut.
const LINE_KEPT: usize = 4 << 10;

/// What `check-write` allows one `write` (WASI: a larger write traps).
const WRITE_LIMIT: usize = OUTPUT_LIMIT;

/// The most `blocking-write-and-flush` takes at once (WASI's own rule).
const BLOCKING_WRITE_LIMIT: usize = 4096;

/// The most pollables one `poll` waits on: the list is not lifted whole
/// before this is checked, so a guest cannot make the host reserve memory
/// for a list it only claims to have.
pub const POLL_LIMIT: usize = 4096;

/// The most random bytes one call may ask for (CPython asks for 256 at a
/// time); a guest asking for more is stopped.
pub const RANDOM_LIMIT: u64 = 1 << 20;

/// The fuel the host's own work on a guest's behalf costs it, per byte
/// (random bytes made, output written): work the guest asks of the host is
/// bounded by its fuel as its own instructions are.
const FUEL_PER_BYTE: u64 = 1;

/// The longest a guest may wait in all: a pollable's representation is its
/// time in microseconds, capped at `u32::MAX` (71 minutes), so a budget
/// must stay below that for a capped pollable to be past it.
const LONGEST_BUDGET_NS: u64 = (u32::MAX as u64 - 1) * 1_000;

/// What std's `HashMap` gets from `wasi:random/insecure-seed`.
const FIXED_HASH_SEED: (u64, u64) = (0x454d_4d41_4121_0001, 0x454d_4d41_4121_0002);

/// One event's answers to WASI: its clocks, its randomness and what it
/// wrote to its standard streams.
#[derive(Debug)]
pub struct WasiState {
    function: String,
    /// The event's `now`, in seconds since the Unix epoch.
    now_s: u64,
    /// The monotonic clock, in nanoseconds: how long the guest has waited.
    waited_ns: u64,
    /// How long the guest may wait in all before its interrupt point.
    budget_ns: u64,
    random: RandomStream,
    /// Standard output and standard error.
    streams: [Output; 2],
}

impl WasiState {
    /// The answers for an event of `function` at `now_s` (seconds), with
    /// `budget` left before the guest is interrupted and `request_id`
    /// seeding its randomness.
    pub fn new(function: &str, request_id: &str, now_s: u64, budget: Duration) -> Self {
        WasiState {
            function: function.to_owned(),
            now_s,
            waited_ns: 0,
            budget_ns: u64::try_from(budget.as_nanos())
                .unwrap_or(u64::MAX)
                .min(LONGEST_BUDGET_NS),
            random: RandomStream::new(request_id),
            streams: [Output::new("stdout"), Output::new("stderr")],
        }
    }

    /// Gives the guest `budget` to wait in instead: a replay's waits are
    /// bounded by the recorded event's time, not the replay's.
    pub fn set_budget(&mut self, budget: Duration) {
        self.budget_ns = u64::try_from(budget.as_nanos())
            .unwrap_or(u64::MAX)
            .min(LONGEST_BUDGET_NS);
    }

    /// Logs what is left of an unfinished line on either stream, and what
    /// was dropped: called once the guest has returned.
    pub fn finish(&mut self) {
        for stream in &mut self.streams {
            stream.finish(&self.function);
        }
    }

    /// The last line the guest wrote to standard error (a Python
    /// traceback's last line names the exception).
    pub fn last_error_line(&self) -> Option<&str> {
        self.streams[STDERR].last_line.as_deref()
    }

    /// Moves the monotonic clock on to `due` (nanoseconds); stops the guest
    /// as its deadline would if that is past the time it has.
    fn wait_until(&mut self, due: u64) -> wasmtime::Result<()> {
        if due > self.budget_ns {
            return Err(Trap::Interrupt.into());
        }
        self.waited_ns = self.waited_ns.max(due);
        Ok(())
    }

    fn write(&mut self, stream: u32, bytes: &[u8]) {
        if let Some(output) = self.streams.get_mut(stream as usize) {
            output.write(&self.function, bytes);
        }
    }
}

const STDOUT: usize = 0;
const STDERR: usize = 1;

/// One standard stream's lines, logged up to [`OUTPUT_LIMIT`] bytes and
/// [`LINE_LIMIT`] lines; past them counted, and still read for the last
/// line that says what went wrong.
#[derive(Debug)]
struct Output {
    name: &'static str,
    /// The line being written (its first [`LINE_KEPT`] bytes), and its length.
    line: Vec<u8>,
    line_len: usize,
    logged_bytes: usize,
    logged_lines: usize,
    dropped: usize,
    /// The last line written that says what went wrong.
    last_line: Option<String>,
    /// A Rust panic's report began (`thread '...' panicked at`): what a
    /// language runtime built in Rust writes after the guest's own error
    /// (componentize-py's "Python function threw an unexpected
    /// exception", after Python's traceback). Its first line is taken only
    /// when nothing was written before it.
    in_panic_report: bool,
}

impl Output {
    fn new(name: &'static str) -> Self {
        Output {
            name,
            line: Vec::new(),
            line_len: 0,
            logged_bytes: 0,
            logged_lines: 0,
            dropped: 0,
            last_line: None,
            in_panic_report: false,
        }
    }

    fn write(&mut self, function: &str, bytes: &[u8]) {
        for byte in bytes {
            if *byte == b'\n' {
                self.end_line(function);
            } else {
                if self.line.len() < LINE_KEPT {
                    self.line.push(*byte);
                }
                self.line_len += 1;
            }
        }
    }

    fn end_line(&mut self, function: &str) {
        let mut line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        if self.line_len > LINE_KEPT {
            line.push_str(&format!("... ({} more bytes)", self.line_len - LINE_KEPT));
        }
        let len = std::mem::take(&mut self.line_len) + 1;
        if self.logged_bytes + len <= OUTPUT_LIMIT && self.logged_lines < LINE_LIMIT {
            self.logged_bytes += len;
            self.logged_lines += 1;
            match self.name {
                "stderr" => tracing::warn!(target: "guest", function, stream = self.name, "{line}"),
                _ => tracing::info!(target: "guest", function, stream = self.name, "{line}"),
            }
        } else {
            self.dropped += len;
        }
        let blank = line.trim().is_empty();
        let after_the_error = self.in_panic_report && self.last_line.is_some();
        if line.starts_with("thread '") && line.contains(" panicked at ") {
            self.in_panic_report = true;
        } else if !blank && !after_the_error {
            self.last_line = Some(line);
        }
    }

    fn finish(&mut self, function: &str) {
        if self.line_len > 0 {
            self.end_line(function);
        }
        if self.dropped > 0 {
            tracing::warn!(
                target: "guest",
                function,
                stream = self.name,
                "{} more bytes of {} dropped: an event logs {OUTPUT_LIMIT} bytes and {LINE_LIMIT} lines of each stream",
                self.dropped,
                self.name
            );
            self.dropped = 0;
        }
    }
}

/// Bytes from SHA-256 in counter mode over a seed: the same seed, the same
/// bytes, on every machine.
#[derive(Debug)]
struct RandomStream {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl RandomStream {
    fn new(request_id: &str) -> Self {
        let seed = Sha256::new()
            .chain_update(b"emmaa:wasi-random\0")
            .chain_update(request_id.as_bytes())
            .finalize()
            .into();
        RandomStream {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            if self.used == self.block.len() {
                self.block = Sha256::new()
                    .chain_update(self.seed)
                    .chain_update(self.counter.to_le_bytes())
                    .finalize()
                    .into();
                self.counter += 1;
                self.used = 0;
            }
            let take = (len - out.len()).min(self.block.len() - self.used);
            out.extend_from_slice(&self.block[self.used..self.used + take]);
            self.used += take;
        }
        out
    }

    fn u64(&mut self) -> u64 {
        let bytes = self.bytes(8);
        u64::from_le_bytes(bytes.try_into().unwrap_or_default())
    }
}

// The resources the answered interfaces hand out or name. A pollable's
// representation is the monotonic time it is ready at, in microseconds
// (capped: a wait that long is past any deadline); a stream's is which.
struct Pollable;
struct IoError;
struct InputStream;
struct OutputStream;
struct Descriptor;
struct DirectoryEntryStream;
struct TerminalInput;
struct TerminalOutput;

/// `wasi:clocks/wall-clock`'s `datetime`.
#[derive(ComponentType, Lower)]
#[component(record)]
struct Datetime {
    seconds: u64,
    nanoseconds: u32,
}

/// `wasi:io/streams`' `stream-error`: only `closed` is ever answered.
#[derive(ComponentType, Lower)]
#[component(variant)]
enum StreamError {
    #[component(name = "last-operation-failed")]
    #[allow(
        dead_code,
        reason = "the type must name every case; the host never fails a write"
    )]
    LastOperationFailed(Resource<IoError>),
    #[component(name = "closed")]
    Closed,
}

/// A pollable that is ready at once (a stream's).
const READY_NOW: u32 = 0;

fn pollable(due_ns: u64) -> Resource<Pollable> {
    let due_us = due_ns.div_ceil(1_000);
    Resource::new_own(u32::try_from(due_us).unwrap_or(u32::MAX))
}

fn due_ns(pollable: &Resource<Pollable>) -> u64 {
    u64::from(pollable.rep()) * 1_000
}

/// Takes `units` of fuel from the guest for work the host does for it.
fn charge<T>(store: &mut StoreContextMut<'_, T>, units: u64) -> wasmtime::Result<()> {
    let left = store.get_fuel()?;
    store.set_fuel(left.saturating_sub(units))
}

/// Adds the answers above to `linker`, for the WASI interfaces (of any 0.2
/// version) that `component` imports; `wasi` finds the event's answers in
/// the store's data. What it leaves undefined is for the caller to make
/// trap.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    component: &Component,
    engine: &Engine,
    wasi: fn(&mut T) -> &mut WasiState,
) -> wasmtime::Result<()> {
    let imported: Vec<(String, Vec<String>)> = component
        .component_type()
        .imports(engine)
        .filter_map(|(name, import)| match import.ty {
            ComponentItem::ComponentInstance(instance) if name.starts_with("wasi:") => {
                let resources = instance
                    .exports(engine)
                    .filter(|(_, export)| matches!(export.ty, ComponentItem::Resource(_)))
                    .map(|(export, _)| export.to_owned())
                    .collect();
                Some((name.to_owned(), resources))
            }
            _ => None,
        })
        .collect();
    for (name, resources) in imported {
        let Some((interface, version)) = name.split_once('@') else {
            continue;
        };
        if !version.starts_with("0.2.") {
            continue;
        }
        let mut instance = linker.instance(&name)?;
        // Each interface names the resources it uses (a clock's pollable,
        // a stream's error) as its own exports: the same types throughout.
        for resource in &resources {
            match resource.as_str() {
                "pollable" => host_resource::<T, Pollable>(&mut instance, resource)?,
                "error" => host_resource::<T, IoError>(&mut instance, resource)?,
                "input-stream" => host_resource::<T, InputStream>(&mut instance, resource)?,
                "output-stream" => host_resource::<T, OutputStream>(&mut instance, resource)?,
                "descriptor" => host_resource::<T, Descriptor>(&mut instance, resource)?,
                "directory-entry-stream" => {
                    host_resource::<T, DirectoryEntryStream>(&mut instance, resource)?
                }
                "terminal-input" => host_resource::<T, TerminalInput>(&mut instance, resource)?,
                "terminal-output" => host_resource::<T, TerminalOutput>(&mut instance, resource)?,
                _ => {}
            }
        }
        match interface {
            "wasi:cli/environment" => environment(&mut instance)?,
            "wasi:cli/stdin" => instance.func_wrap("get-stdin", |_, (): ()| {
                Ok((Resource::<InputStream>::new_own(0),))
            })?,
            "wasi:cli/stdout" => instance.func_wrap("get-stdout", |_, (): ()| {
                Ok((Resource::<OutputStream>::new_own(STDOUT as u32),))
            })?,
            "wasi:cli/stderr" => instance.func_wrap("get-stderr", |_, (): ()| {
                Ok((Resource::<OutputStream>::new_own(STDERR as u32),))
            })?,
            "wasi:cli/terminal-stdin" => instance.func_wrap("get-terminal-stdin", |_, (): ()| {
                Ok((None::<Resource<TerminalInput>>,))
            })?,
            "wasi:cli/terminal-stdout" => instance.func_wrap("get-terminal-stdout", |_, (): ()| {
                Ok((None::<Resource<TerminalOutput>>,))
            })?,
            "wasi:cli/terminal-stderr" => instance.func_wrap("get-terminal-stderr", |_, (): ()| {
                Ok((None::<Resource<TerminalOutput>>,))
            })?,
            "wasi:io/poll" => poll(&mut instance, wasi)?,
            "wasi:io/streams" => streams(&mut instance, wasi)?,
            "wasi:clocks/wall-clock" => wall_clock(&mut instance, wasi)?,
            "wasi:clocks/monotonic-clock" => monotonic_clock(&mut instance, wasi)?,
            "wasi:random/random" => random(&mut instance, wasi, "get-random-bytes", "get-random-u64")?,
            "wasi:random/insecure" => random(
                &mut instance,
                wasi,
                "get-insecure-random-bytes",
                "get-insecure-random-u64",
            )?,
            "wasi:random/insecure-seed" => {
                instance.func_wrap("insecure-seed", |_, (): ()| Ok((FIXED_HASH_SEED,)))?
            }
            "wasi:filesystem/preopens" => instance.func_wrap("get-directories", |_, (): ()| {
                Ok((Vec::<(Resource<Descriptor>, String)>::new(),))
            })?,
            _ => {}
        }
    }
    Ok(())
}

/// A resource the host hands out (or only names) with nothing behind it.
fn host_resource<T: 'static, R: 'static>(
    instance: &mut LinkerInstance<'_, T>,
    name: &str,
) -> wasmtime::Result<()> {
    instance.resource(name, ResourceType::host::<R>(), |_, _| Ok(()))
}

fn environment<T: 'static>(instance: &mut LinkerInstance<'_, T>) -> wasmtime::Result<()> {
    instance.func_wrap("get-environment", |_, (): ()| {
        Ok((Vec::<(String, String)>::new(),))
    })?;
    instance.func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))?;
    instance.func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))
}

fn poll<T: 'static>(
    instance: &mut LinkerInstance<'_, T>,
    wasi: fn(&mut T) -> &mut WasiState,
) -> wasmtime::Result<()> {
    instance.func_wrap(
        "[method]pollable.ready",
        move |mut store: StoreContextMut<T>, (pollable,): (Resource<Pollable>,)| {
            Ok((due_ns(&pollable) <= wasi(store.data_mut()).waited_ns,))
        },
    )?;
    instance.func_wrap(
        "[method]pollable.block",
        move |mut store: StoreContextMut<T>, (pollable,): (Resource<Pollable>,)| {
            wasi(store.data_mut()).wait_until(due_ns(&pollable))
        },
    )?;
    instance.func_wrap(
        "poll",
        move |mut store: StoreContextMut<T>, (pollables,): (WasmList<Resource<Pollable>>,)| {
            if !(1..=POLL_LIMIT).contains(&pollables.len()) {
                wasmtime::bail!(
                    "the guest polled {} pollables at once; WASI asks for at least one, the host takes at most {POLL_LIMIT}",
                    pollables.len()
                );
            }
            let dues = pollables
                .iter(&mut store)?
                .map(|pollable| pollable.map(|pollable| due_ns(&pollable)))
                .collect::<wasmtime::Result<Vec<u64>>>()?;
            let state = wasi(store.data_mut());
            let soonest = dues.iter().copied().min().unwrap_or(state.waited_ns);
            state.wait_until(soonest)?;
            let ready = (0..)
                .zip(&dues)
                .filter(|(_, due)| **due <= state.waited_ns)
                .map(|(at, _)| at)
                .collect::<Vec<u32>>();
            Ok((ready,))
        },
    )
}

fn streams<T: 'static>(
    instance: &mut LinkerInstance<'_, T>,
    wasi: fn(&mut T) -> &mut WasiState,
) -> wasmtime::Result<()> {
    // Standard input is at its end.
    for read in ["[method]input-stream.read", "[method]input-stream.blocking-read"] {
        instance.func_wrap(read, |_, (_, _): (Resource<InputStream>, u64)| {
            Ok((Err::<Vec<u8>, _>(StreamError::Closed),))
        })?;
    }
    for skip in ["[method]input-stream.skip", "[method]input-stream.blocking-skip"] {
        instance.func_wrap(skip, |_, (_, _): (Resource<InputStream>, u64)| {
            Ok((Err::<u64, _>(StreamError::Closed),))
        })?;
    }
    instance.func_wrap(
        "[method]input-stream.subscribe",
        |_, (_,): (Resource<InputStream>,)| Ok((Resource::<Pollable>::new_own(READY_NOW),)),
    )?;
    // Standard output and error take everything at once.
    instance.func_wrap(
        "[method]output-stream.check-write",
        |_, (_,): (Resource<OutputStream>,)| Ok((Ok::<u64, StreamError>(OUTPUT_LIMIT as u64),)),
    )?;
    for (write, most) in [
        ("[method]output-stream.write", WRITE_LIMIT),
        (
            "[method]output-stream.blocking-write-and-flush",
            BLOCKING_WRITE_LIMIT,
        ),
    ] {
        instance.func_wrap(
            write,
            move |mut store: StoreContextMut<T>, (stream, bytes): (Resource<OutputStream>, WasmList<u8>)| {
                if bytes.len() > most {
                    wasmtime::bail!(
                        "the guest wrote {} bytes at once to a standard stream; WASI allows it {most}",
                        bytes.len()
                    );
                }
                charge(&mut store, bytes.len() as u64 * FUEL_PER_BYTE)?;
                let written = bytes.as_le_slice(&store).to_vec();
                wasi(store.data_mut()).write(stream.rep(), &written);
                Ok((Ok::<(), StreamError>(()),))
            },
        )?;
    }
    for flush in [
        "[method]output-stream.flush",
        "[method]output-stream.blocking-flush",
    ] {
        instance.func_wrap(flush, |_, (_,): (Resource<OutputStream>,)| {
            Ok((Ok::<(), StreamError>(()),))
        })?;
    }
    instance.func_wrap(
        "[method]output-stream.subscribe",
        |_, (_,): (Resource<OutputStream>,)| Ok((Resource::<Pollable>::new_own(READY_NOW),)),
    )
}

fn wall_clock<T: 'static>(
    instance: &mut LinkerInstance<'_, T>,
    wasi: fn(&mut T) -> &mut WasiState,
) -> wasmtime::Result<()> {
    instance.func_wrap("now", move |mut store: StoreContextMut<T>, (): ()| {
        let state = wasi(store.data_mut());
        let since = Duration::from_nanos(state.waited_ns);
        Ok((Datetime {
            seconds: state.now_s.saturating_add(since.as_secs()),
            nanoseconds: since.subsec_nanos(),
        },))
    })?;
    instance.func_wrap("resolution", |_, (): ()| {
        Ok((Datetime {
            seconds: 0,
            nanoseconds: 1,
        },))
    })
}

fn monotonic_clock<T: 'static>(
    instance: &mut LinkerInstance<'_, T>,
    wasi: fn(&mut T) -> &mut WasiState,
) -> wasmtime::Result<()> {
    instance.func_wrap("now", move |mut store: StoreContextMut<T>, (): ()| {
        Ok((wasi(store.data_mut()).waited_ns,))
    })?;
    instance.func_wrap("resolution", |_, (): ()| Ok((1_u64,)))?;
    instance.func_wrap("subscribe-instant", |_, (when,): (u64,)| Ok((pollable(when),)))?;
    instance.func_wrap(
        "subscribe-duration",
        move |mut store: StoreContextMut<T>, (duration,): (u64,)| {
            Ok((pollable(
                wasi(store.data_mut()).waited_ns.saturating_add(duration),
            ),))
        },
    )
}

fn random<T: 'static>(
    instance: &mut LinkerInstance<'_, T>,
    wasi: fn(&mut T) -> &mut WasiState,
    bytes: &str,
    number: &str,
) -> wasmtime::Result<()> {
    instance.func_wrap(bytes, move |mut store: StoreContextMut<T>, (len,): (u64,)| {
        if len > RANDOM_LIMIT {
            wasmtime::bail!(
                "the guest asked for {len} random bytes at once; the host gives at most {RANDOM_LIMIT}"
            );
        }
        charge(&mut store, len * FUEL_PER_BYTE)?;
        Ok((wasi(store.data_mut()).random.bytes(len as usize),))
    })?;
    instance.func_wrap(number, move |mut store: StoreContextMut<T>, (): ()| {
        Ok((wasi(store.data_mut()).random.u64(),))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_request_id_gives_the_same_bytes_and_another_gives_others() {
        let mut first = RandomStream::new("req-1");
        let mut again = RandomStream::new("req-1");
        let mut other = RandomStream::new("req-2");
        let bytes = first.bytes(100);
        assert_eq!(bytes.len(), 100);
        // Drawn in other pieces, the same stream.
        let mut pieces = again.bytes(7);
        pieces.extend(again.bytes(93));
        assert_eq!(pieces, bytes);
        assert_ne!(other.bytes(100), bytes);
        assert_ne!(first.u64(), first.u64());
    }

    #[test]
    fn a_wait_moves_the_clock_on_and_one_past_the_budget_is_the_deadline() {
        let mut state = WasiState::new("f", "r", 1_000, Duration::from_secs(2));
        state.wait_until(1_500_000_000).unwrap();
        assert_eq!(state.waited_ns, 1_500_000_000);
        // A wait for a time already past does not move it back.
        state.wait_until(10).unwrap();
        assert_eq!(state.waited_ns, 1_500_000_000);
        let err = state.wait_until(2_000_000_001).unwrap_err();
        assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::Interrupt));
    }

    #[test]
    fn the_last_line_on_standard_error_names_the_failure() {
        let mut state = WasiState::new("f", "r", 0, Duration::from_secs(1));
        state.write(STDERR as u32, b"Traceback\nValueError: no");
        assert_eq!(state.last_error_line(), Some("Traceback"));
        state.finish();
        assert_eq!(state.last_error_line(), Some("ValueError: no"));
        // A runtime's panic report after it does not hide it.
        state.write(
            STDERR as u32,
            b"\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:1:2:\nPython function threw\nnote: run with\n",
        );
        assert_eq!(state.last_error_line(), Some("ValueError: no"));
        let mut bare = WasiState::new("f", "r", 0, Duration::from_secs(1));
        bare.write(
            STDERR as u32,
            b"thread 'main' panicked at src/lib.rs:1:2:\nout of bounds\nnote: run with\n",
        );
        assert_eq!(bare.last_error_line(), Some("out of bounds"));
    }

    #[test]
    fn output_is_logged_up_to_its_byte_and_line_limits_and_the_rest_counted() {
        let mut state = WasiState::new("f", "r", 0, Duration::from_secs(1));
        // Lines of a thousand bytes: 65 fit in 64 KiB.
        let line = [vec![b'x'; 999], vec![b'\n']].concat();
        for _ in 0..100 {
            state.write(STDOUT as u32, &line);
        }
        let stdout = &state.streams[STDOUT];
        assert_eq!((stdout.logged_lines, stdout.logged_bytes), (65, 65_000));
        assert_eq!(stdout.dropped, 35_000);
        // Short lines: a thousand of them.
        for _ in 0..2_000 {
            state.write(STDERR as u32, b"w\n");
        }
        let stderr = &state.streams[STDERR];
        assert_eq!((stderr.logged_lines, stderr.dropped), (LINE_LIMIT, 2_000));
        // Past the limits, the last line is still read.
        state.write(STDERR as u32, b"ValueError: late\n");
        assert_eq!(state.last_error_line(), Some("ValueError: late"));
    }

    #[test]
    fn a_budget_stays_below_the_longest_wait_a_pollable_can_hold() {
        let mut state = WasiState::new("f", "r", 0, Duration::from_secs(10 * 3600));
        assert_eq!(state.budget_ns, LONGEST_BUDGET_NS);
        // A pollable capped at u32::MAX microseconds is past the budget.
        assert!(state.wait_until(u64::from(u32::MAX) * 1_000).is_err());
    }
}
