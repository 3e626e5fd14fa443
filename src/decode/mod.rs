//! `amqp-rpc decode`: a dissection of every AMQP frame in a capture file or a hex dump.
//!
//! The dissection itself is the `amqp_dissect` library (input detection, captures, hex dumps,
//! TCP reassembly, frame events); this module is the command around it: the arguments, the
//! [printers](mod@print) (tree, JSON Lines, summary, flow graph) and a [`progress`] bar.
//!
//! Everything streams: a packet is dissected and its frames printed before the next is read, so
//! memory stays bounded by the largest frame and the out-of-order window, not by the capture.

use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

pub use amqp_dissect::{
    Endpoints, Event, Outcome, Side, Unreadable, What, AMQP_PORT, DEFAULT_FRAME_LIMIT,
};

pub mod print;
pub mod progress;

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
    /// JSON Lines: one object per frame (with --rpc: per call).
    #[arg(long, conflicts_with_all = ["summary", "flow"])]
    pub json: bool,
    /// The RPC calls: requests paired with deliveries, replies and acks across connections, one
    /// line per call, then latency percentiles and the problems found.
    #[arg(long, conflicts_with_all = ["summary", "flow"])]
    pub rpc: bool,
    /// Write a self-contained HTML report (flow diagram, RPC calls with latency bars, decoded
    /// frames on click) to this file instead of printing.
    #[arg(long, value_name = "OUT.html", conflicts_with_all = ["json", "summary", "flow", "rpc"])]
    pub html: Option<PathBuf>,
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
            rpc: false,
            html: None,
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

impl From<InputFormat> for amqp_dissect::InputFormat {
    fn from(format: InputFormat) -> Self {
        match format {
            InputFormat::Pcap => amqp_dissect::InputFormat::Pcap,
            InputFormat::Hex => amqp_dissect::InputFormat::Hex,
            InputFormat::Bin => amqp_dissect::InputFormat::Bin,
        }
    }
}

impl DecodeArgs {
    /// What the dissector needs to know of the arguments.
    pub fn options(&self) -> amqp_dissect::Options {
        amqp_dissect::Options {
            format: self.format.map(Into::into),
            raw: self.raw,
            broker_port: self.port,
            frame_max: self.frame_max,
        }
    }
}

/// The exit code of a run that read its input: 0 when everything decoded, 1 when some frames
/// were malformed (or the capture was damaged). Unreadable input is 2.
pub fn exit_code(outcome: &Outcome) -> u8 {
    if outcome.errors > 0 {
        1
    } else {
        0
    }
}

/// `amqp-rpc decode`: run and turn the outcome into the exit code.
pub fn run(args: &DecodeArgs) -> ExitCode {
    let stdout = io::stdout();
    let colour = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let sink: Box<dyn Write> = match &args.html {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Box::new(file),
            Err(e) => {
                eprintln!("amqp-rpc decode: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(stdout.lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, sink);
    let result = match args.file.as_deref() {
        Some(path) if path.as_os_str() != "-" => match std::fs::File::open(path) {
            Ok(file) => {
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                let progress = progress::Progress::for_file(len);
                decode(file, args, colour, progress, &mut out)
            }
            Err(e) => Err(Unreadable::Io(io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))),
        },
        _ => decode(
            io::stdin(),
            args,
            colour,
            progress::Progress::none(),
            &mut out,
        ),
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
            ExitCode::from(exit_code(&outcome))
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
    progress: progress::Progress,
    out: &mut dyn Write,
) -> Result<Outcome, Unreadable> {
    let mut printer = print::printer(args, colour);
    let mut write_error = None;
    let outcome = amqp_dissect::dissect(progress.wrap(input), &args.options(), |event| {
        if let Err(e) = printer.event(event, out) {
            write_error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    progress.finish();
    let outcome = outcome?;
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
    let result = decode(input, args, false, progress::Progress::none(), &mut out);
    (String::from_utf8_lossy(&out).into_owned(), result)
}
