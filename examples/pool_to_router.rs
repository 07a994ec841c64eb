//! A ROUTER server whose requests are answered by blocking work on the thread pool: each
//! request is hashed on a worker (standing in for a disk read or a slow library call) and
//! the reply is sent from the loop. SIGINT/SIGTERM end it.
#[macro_use]
#[path = "util/out.rs"]
mod out;

use std::hash::{DefaultHasher, Hash, Hasher};

use clap::Parser;
use evnet::ev::{Ctx, Loop};
use evnet::fair::{Outbox, Sock, ZmqHandler, ZmqWatcher};
use evnet::pool::Pool;
use evnet::zmq;

#[derive(Parser)]
#[command(about = "ROUTER requests answered by blocking work on a thread pool")]
struct Args {
    /// Endpoint the ROUTER binds.
    #[arg(long, default_value = "tcp://127.0.0.1:5558")]
    router: String,
}

struct App {
    pool: Pool<App>,
    replies: Outbox,
    router: Option<ZmqWatcher>,
}

struct Server;
impl ZmqHandler<Ctx<App>> for Server {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (app, cx): (&mut App, &mut Ctx<App>),
    ) {
        let (peer, body) = (m[0].to_vec(), m[m.len() - 1].to_vec());
        let job = move || {
            let mut h = DefaultHasher::new();
            body.hash(&mut h); // the blocking work
            format!("{:016x}", h.finish())
        };
        let on_done = move |app: &mut App, _: &mut Ctx<App>, r: Result<String, _>| {
            let reply = r.unwrap_or_else(|e| format!("error: {e}"));
            app.replies.push([&peer[..], reply.as_bytes()]);
            if let Some(w) = &app.router {
                w.set_writable(true);
            }
        };
        if let Ok(job) = app.pool.run(cx, job, on_done) {
            job.detach(); // the reply comes back whatever happens to this request
        }
    }
    fn writable(&mut self, s: &mut Sock<'_>, (app, _): (&mut App, &mut Ctx<App>)) {
        let _ = app.replies.flush_one(s);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER)?;
    router.bind(&args.router)?;
    outln!("router {}", router.get_last_endpoint()?.unwrap_or_default());
    let mut ev = Loop::<App>::new()?;
    let pool = Pool::new(&mut ev)?;
    let w = ZmqWatcher::new(&mut ev, router, Server)?;
    let mut app = App {
        pool,
        replies: Outbox::new(),
        router: Some(w),
    };
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |_, cx, _| cx.stop_loop())?;
    }
    ev.run(&mut app)?;
    Ok(())
}
