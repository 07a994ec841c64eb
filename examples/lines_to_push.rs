//! A TCP line server that forwards every line it receives to a ZeroMQ PUSH socket through
//! an Outbox in the loop state. SIGINT/SIGTERM end it.
#[macro_use]
#[path = "util/out.rs"]
mod out;

use clap::Parser;
use evnet::bufio::{self, Conn, Stream, StreamEvent};
use evnet::bytes::Bytes;
use evnet::ev::{Ctx, Loop};
use evnet::fair::{Outbox, Sock, ZmqHandler, ZmqWatcher};
use evnet::socket::{bind_tcp_all, Accept, Listener};
use evnet::zmq;

#[derive(Parser)]
#[command(about = "TCP lines in, ZeroMQ PUSH out")]
struct Args {
    /// Host and port to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7030")]
    listen: String,
    /// Endpoint the PUSH socket connects to.
    #[arg(long, default_value = "tcp://127.0.0.1:5557")]
    push: String,
}

#[derive(Default)]
struct App {
    out: Outbox,
    push: Option<ZmqWatcher>,
}

struct Forward;
impl bufio::StreamHandler<App> for Forward {
    fn read(&mut self, c: &Conn<App>, line: Bytes, app: &mut App, cx: &mut Ctx<App>) {
        app.out.push([&line[..]]);
        if let Some(p) = &app.push {
            p.set_writable(true);
        }
        c.read_line(cx);
    }
    fn event(&mut self, c: &Conn<App>, e: StreamEvent, _: &mut App, cx: &mut Ctx<App>) {
        match e {
            StreamEvent::Eof => c.close(cx),
            _ => c.abort(cx),
        }
    }
}

struct Pusher;
impl ZmqHandler<Ctx<App>> for Pusher {
    fn writable(&mut self, s: &mut Sock<'_>, (app, _): (&mut App, &mut Ctx<App>)) {
        let _ = app.out.flush_one(s);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH)?;
    push.connect(&args.push)?;
    let mut ev = Loop::<App>::new()?;
    let mut app = App {
        push: Some(ZmqWatcher::new(&mut ev, push, Pusher)?),
        ..App::default()
    };
    let (host, port) = args
        .listen
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--listen HOST:PORT"))?;
    let socks = bind_tcp_all(Some(host), port.parse()?)?;
    outln!("listening on {:?}", socks[0].local_addr()?.as_socket());
    let _l = Listener::new(&mut ev, socks, |_: &mut App, cx, a| {
        if let Accept::Conn(c) = a {
            if let Ok(s) = Stream::new(cx, c.socket, Forward) {
                s.read_line(cx);
                s.detach();
            }
        }
    });
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |_, cx, _| cx.stop_loop())?;
    }
    ev.run(&mut app)?;
    Ok(())
}
