//! `amqp-rpc decode`: a dissection of every AMQP frame in a capture file or a hex dump.
//!
//! The pipeline reads left to right, one module per stage:
//! [`input`] (what the bytes are) → [`capture`] or [`hexdump`] (packets) → [`packet`] (link, IP,
//! TCP) → [`tcp`] (streams, directions, reassembly) → [`frames`] (AMQP frames, resync after
//! damage) → [`print`] (tree, JSON Lines, summary, flow graph).
//!
//! Everything streams: a packet is dissected and its frames printed before the next is read, so
//! memory stays bounded by the largest frame and the out-of-order window, not by the capture.

use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use amqp_codec::Frame;
use clap::{Args, ValueEnum};

pub mod capture;
pub mod frames;
pub mod hexdump;
pub mod input;
pub mod packet;
pub mod print;
pub mod tcp;

/// The AMQP port: the side of a TCP connection on it is the broker.
pub const AMQP_PORT: u16 = 5672;

/// Largest frame the dissector buffers (header + payload + frame-end). Far above any `frame_max`
/// RabbitMQ negotiates by default (128 KiB), so real frames pass, while a garbage size field
/// cannot make us hold gigabytes while we wait for bytes that never come.
pub const DEFAULT_FRAME_LIMIT: u32 = 32 * 1024 * 1024;

/// Arguments of `amqp-rpc decode`.
#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// Capture file (pcap, pcapng) or hex dump; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
    /// Input format, instead of detecting it.
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// The bytes are a raw AMQP byte stream, not packets.
    #[arg(long)]
    pub raw: bool,
    /// TCP port of the broker.
    #[arg(long, default_value_t = AMQP_PORT)]
    pub port: u16,
    /// JSON Lines: one object per frame.
    #[arg(long, conflicts_with_all = ["summary", "flow"])]
    pub json: bool,
    /// One line per frame, then counts by method.
    #[arg(long, conflicts_with = "flow")]
    pub summary: bool,
    /// The conversation as a sequence diagram (`--flow` text, `--flow=mermaid`).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "text", require_equals = true)]
    pub flow: Option<FlowStyle>,
    /// Largest frame accepted, in bytes (bigger ones are reported as malformed).
    #[arg(long, default_value_t = DEFAULT_FRAME_LIMIT)]
    pub frame_max: u32,
    /// Colour: auto (on a terminal), always or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

impl DecodeArgs {
    /// Arguments as if given on the command line with only an output mode (tests, fuzzing).
    pub fn new(format: Option<InputFormat>) -> Self {
        DecodeArgs {
            file: None,
            format,
            raw: false,
            port: AMQP_PORT,
            json: false,
            summary: false,
            flow: None,
            frame_max: DEFAULT_FRAME_LIMIT,
            color: ColorChoice::Never,
        }
    }
}

/// Input formats `--format` can force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// pcap or pcapng capture file.
    Pcap,
    /// Text hex dump (tshark -x, xxd, hexdump -C, od, text2pcap, plain hex).
    Hex,
    /// Binary raw AMQP byte stream.
    Bin,
}

/// Flow-graph renderings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlowStyle {
    /// Text columns for a terminal.
    Text,
    /// A Mermaid `sequenceDiagram`.
    Mermaid,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Which peer sent a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client (the connection's initiator).
    Client,
    /// The broker.
    Broker,
}

impl Side {
    /// `"client"` or `"broker"`, as in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Broker => "broker",
        }
    }

    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Broker,
            Side::Broker => Side::Client,
        }
    }
}

/// The two ends of a stream, as printable addresses (`127.0.0.1:5672`), or generic names for a
/// raw byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The client's address.
    pub client: String,
    /// The broker's address.
    pub broker: String,
}

/// One AMQP frame, or one thing that went wrong, at a place in a stream.
#[derive(Debug, Clone)]
pub struct Event {
    /// 1-based number of the packet where the frame ends.
    pub packet: u64,
    /// Capture timestamp of that packet, in seconds since the epoch.
    pub time: Option<f64>,
    /// TCP stream index (0-based, by first appearance, as Wireshark's `tcp.stream`).
    pub stream: u32,
    /// The sender.
    pub side: Side,
    /// Byte offset of the frame in its stream direction.
    pub offset: u64,
    /// The stream's endpoints.
    pub endpoints: Rc<Endpoints>,
    /// What was found.
    pub what: What,
}

/// A decoded frame or an error.
#[derive(Debug, Clone)]
// Frames are the common case: boxing them would cost an allocation each for the rare error.
#[allow(clippy::large_enum_variant)]
pub enum What {
    /// A frame; `length` is the frame header's payload size (0 for the protocol header).
    Frame {
        /// The frame.
        frame: Frame,
        /// The header's size field.
        length: u32,
    },
    /// A malformed frame, a hole in the stream, or bytes left over at its end.
    Error {
        /// The channel, when the frame header was readable.
        channel: Option<u16>,
        /// The header's size field, when readable.
        length: Option<u32>,
        /// Offset of the offending byte within the stream direction.
        at: u64,
        /// What was expected and what was found.
        message: String,
    },
}

/// How a decode run went; maps to the exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Frames decoded.
    pub frames: u64,
    /// Malformed frames, holes and truncations reported.
    pub errors: u64,
    /// Packets read.
    pub packets: u64,
    /// Why the input stopped before its end (a truncated capture, a bad hex line), if it did.
    pub damage: Option<String>,
}

impl Outcome {
    /// 0 when everything decoded, 1 when some frames were malformed.
    pub fn exit_code(&self) -> u8 {
        if self.errors > 0 {
            1
        } else {
            0
        }
    }
}

/// The input could not be read at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The bytes are none of the formats we read.
    #[error("unrecognised input: {0}")]
    Format(String),
}

/// `amqp-rpc decode`: run and turn the outcome into the exit code.
pub fn run(args: &DecodeArgs) -> ExitCode {
    let stdout = io::stdout();
    let colour = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = match args.file.as_deref() {
        Some(path) if path.as_os_str() != "-" => match std::fs::File::open(path) {
            Ok(file) => {
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                let progress = input::Progress::for_file(len);
                decode(file, args, colour, progress, &mut out)
            }
            Err(e) => Err(Unreadable::Io(io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))),
        },
        _ => decode(io::stdin(), args, colour, input::Progress::none(), &mut out),
    };
    let flushed = out.flush();
    match result {
        Ok(outcome) => {
            if let Some(damage) = &outcome.damage {
                eprintln!("amqp-rpc decode: {damage}");
            }
            if let Err(e) = flushed {
                if e.kind() != io::ErrorKind::BrokenPipe {
                    eprintln!("amqp-rpc decode: {e}");
                    return ExitCode::from(2);
                }
            }
            if outcome.errors > 0 {
                eprintln!(
                    "amqp-rpc decode: {} frame(s) decoded, {} malformed",
                    outcome.frames, outcome.errors
                );
            }
            ExitCode::from(outcome.exit_code())
        }
        Err(Unreadable::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amqp-rpc decode: {e}");
            ExitCode::from(2)
        }
    }
}

/// Decode `input` and print to `out` in the mode `args` selects.
pub fn decode(
    input: impl Read + Send,
    args: &DecodeArgs,
    colour: bool,
    progress: input::Progress,
    out: &mut dyn Write,
) -> Result<Outcome, Unreadable> {
    let mut printer = print::printer(args, colour);
    let mut outcome = Outcome::default();
    let mut write_error = None;
    input::for_each_event(input, args, progress, &mut outcome, &mut |event| {
        if write_error.is_none() {
            if let Err(e) = printer.event(event, out) {
                write_error = Some(e);
            }
        }
        write_error.is_none()
    })?;
    if let Some(e) = write_error {
        return Err(Unreadable::Io(e));
    }
    printer.finish(out)?;
    Ok(outcome)
}

/// Decode a byte slice to a string (tests and fuzzing): the output, and the outcome or the reason
/// the input was unreadable.
pub fn decode_slice(input: &[u8], args: &DecodeArgs) -> (String, Result<Outcome, Unreadable>) {
    let mut out = Vec::new();
    let result = decode(input, args, false, input::Progress::none(), &mut out);
    (String::from_utf8_lossy(&out).into_owned(), result)
}
