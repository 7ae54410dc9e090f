//! A Rust program that talks to a running host:
//!   plexus_client [--socket PATH] call TARGET PAYLOAD
//!   plexus_client [--socket PATH] publish SUBJECT PAYLOAD
//!   plexus_client [--socket PATH] subscribe PATTERN COUNT     (prints each event)
//!   plexus_client [--socket PATH] serve NAME CAPABILITY        (an agent that upper-cases text; until stdin closes)
//!   plexus_client [--socket PATH] pipeline TARGET N            (N queries in flight at once, payload = their number;
//!                                                               checks each answer is its own query's number)
//!   plexus_client [--socket PATH] stream TARGET PAYLOAD MS [CANCEL_AFTER]
//!                                                              (prints "partial: ..." per partial answer, then
//!                                                               "final: ..."; MS is the timeout; with CANCEL_AFTER
//!                                                               it cancels after that many partials)
//! With $PLEXUS_CLIENT (and $PLEXUS_TOKEN) set, it says hello as that client first.
//! With $PLEXUS_TRACEPARENT set, `call` joins that W3C trace and prints the answer's
//! trace id on stderr as "trace: <32 hex digits>".
use plexus_agent::client::{Client, TraceParent};
use plexus_agent::Kind;
use std::time::Duration;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = None;
    if args.first().map(String::as_str) == Some("--socket") && args.len() > 1 {
        socket = Some(args.remove(1));
        args.remove(0);
    }
    // $PLEXUS_CLIENT (and $PLEXUS_TOKEN): say hello as that client of the host's plexus.yaml.
    let connected = match std::env::var("PLEXUS_CLIENT") {
        Ok(name) if !name.is_empty() => Client::connect_as(socket.as_deref(), &name, std::env::var("PLEXUS_TOKEN").ok().as_deref()),
        _ => Client::connect(socket.as_deref()),
    };
    let client = match connected {
        Ok(c) => c,
        Err(e) => { eprintln!("{e}"); std::process::exit(1) }
    };
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["call", target, payload] => match std::env::var("PLEXUS_TRACEPARENT") {
            Ok(tp) if !tp.is_empty() => TraceParent::parse(&tp).and_then(|tp| {
                client.call_traced(target, payload.as_bytes(), Duration::from_secs(30), Some(&tp)).map(|(r, t)| {
                    println!("{}", String::from_utf8_lossy(&r));
                    eprintln!("trace: {:016x}{:016x}", t.hi, t.lo);
                })
            }),
            _ => client.call(target, payload.as_bytes(), Duration::from_secs(30))
                .map(|r| println!("{}", String::from_utf8_lossy(&r))),
        },
        ["publish", subject, payload] => client.publish(subject, payload.as_bytes()).map(|id| println!("{id}")),
        ["subscribe", pattern, count] => client.subscribe(pattern).map(|_| {
            println!("ready");
            for _ in 0..count.parse::<usize>().unwrap_or(1) {
                match client.receive(Duration::from_secs(30)) {
                    Some(d) => println!("{} {} {}", d.target, d.sender, String::from_utf8_lossy(&d.payload)),
                    None => { eprintln!("no event within 30 s"); std::process::exit(2) }
                }
            }
        }),
        ["serve", name, capability] => client.register(name, &[capability]).map(|_| serve(&client)),
        ["pipeline", target, n] => pipeline(&client, target, n.parse().unwrap_or(1)),
        ["stream", target, payload, ms] => stream(&client, target, payload, ms.parse().unwrap_or(30_000), None),
        ["stream", target, payload, ms, after] => stream(&client, target, payload, ms.parse().unwrap_or(30_000), after.parse().ok()),
        _ => {
            eprintln!("usage: plexus_client [--socket PATH] call TARGET PAYLOAD | publish SUBJECT PAYLOAD | subscribe PATTERN COUNT | serve NAME CAPABILITY | pipeline TARGET N | stream TARGET PAYLOAD MS [CANCEL_AFTER]");
            std::process::exit(64)
        }
    };
    if let Err(e) = result { eprintln!("{e}"); std::process::exit(1) }
}

/// Answers every query with its payload upper-cased, until stdin closes.
fn serve(client: &Client) {
    println!("ready");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || { let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new()); d.store(true, std::sync::atomic::Ordering::Relaxed) });
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(m) = client.receive(Duration::from_millis(100)) {
            if m.kind == Kind::Query {
                let _ = client.reply(&m, "text/plain", String::from_utf8_lossy(&m.payload).to_uppercase().as_bytes());
            }
        }
    }
}

/// A streamed call: each partial on its own line as it arrives, then the final answer.
fn stream(client: &Client, target: &str, payload: &str, ms: u64, cancel_after: Option<usize>)
    -> Result<(), plexus_agent::client::ClientError> {
    let mut s = client.stream(target, payload.as_bytes(), Duration::from_millis(ms))?;
    let mut seen = 0;
    while let Some(item) = s.next() {
        let partial = item?;
        seen += 1;
        println!("partial: {}", String::from_utf8_lossy(&partial));
        if cancel_after == Some(seen) { s.cancel()?; }
    }
    println!("final: {}", String::from_utf8_lossy(s.result().unwrap_or_default()));
    Ok(())
}

/// Submits n queries before waiting for any, then takes each one's answer:
/// it must be the query's own number, whatever order the agent answered in.
fn pipeline(client: &Client, target: &str, n: usize) -> Result<(), plexus_agent::client::ClientError> {
    let pending = (0..n).map(|i| client.submit(target, i.to_string().as_bytes(), Duration::from_secs(60)))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, p) in pending.into_iter().enumerate() {
        let answer = p.wait()?;
        if answer != i.to_string().as_bytes() {
            eprintln!("query {i} got the answer {:?}", String::from_utf8_lossy(&answer));
            std::process::exit(1);
        }
    }
    println!("{n} answered, each with its own number");
    Ok(())
}
