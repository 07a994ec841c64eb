//! `syslog_relay_server --threads N`: the relay on N loops (see the server's docs).

use std::net::UdpSocket;
use std::sync::Arc;

use evnet::ev::IoInterest;
use evnet::loops::{channel, LoopsBuilder};
use evnet::socket::{bind_tcp_shard, Listener, DEFAULT_BACKLOG};
use evnet::tls::rustls;

use super::until_signal::{run_until_signal, PerLoop};
use super::{accept, log, on_udp, publisher, Args, Relay, LOOP_QUEUE};
// SIGUSR1 goes to the waiting thread here, which does not report: the stats lines come
// from each loop every --stats-interval.

/// `--threads N`: loop 0 takes the UDP socket, the PUB socket and the shards bound here;
/// loops 1.. bind shards beside them and get loop 0's messages through a channel each.
/// This thread waits for a signal and stops them all.
pub fn serve(
    args: Args,
    cfg: Arc<rustls::ServerConfig>,
    udp: UdpSocket,
    socks: Vec<evnet::socket2::Socket>,
) -> anyhow::Result<()> {
    let addrs = socks
        .iter()
        .map(|s| s.local_addr().ok().and_then(|a| a.as_socket()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("a listening socket without an address"))?;
    let n = args.threads;
    let (senders, receivers): (Vec<_>, Vec<_>) = (1..n).map(|_| channel(LOOP_QUEUE)).unzip();
    // Loop 0 reads UDP, owns the PUB socket and sends to the others; loop i > 0 receives
    // through channel i - 1.
    let first = PerLoop::first((udp, socks, senders));
    let receivers = PerLoop::new(std::iter::once(None).chain(receivers.into_iter().map(Some)));
    let builder = LoopsBuilder::new(n).pin(args.pin).name("relay");
    run_until_signal(builder, |b| {
        let loops = b.spawn(
            move |i, ev| {
                let (socks, udp, peers) = match first.take(i) {
                    Some((udp, socks, senders)) => {
                        let w = ev.io(udp.try_clone()?, IoInterest::READABLE, |relay, cx, _| {
                            on_udp(relay, cx)
                        });
                        (socks, Some((udp, w)), senders)
                    }
                    None => {
                        let socks = addrs
                            .iter()
                            .map(|a| bind_tcp_shard(*a, DEFAULT_BACKLOG))
                            .collect::<std::io::Result<Vec<_>>>()?;
                        (socks, None, Vec::new())
                    }
                };
                if let Some(rx) = receivers.take(i) {
                    rx.attach(ev, |relay: &mut Relay, cx, frame| {
                        relay.deliver(frame, None, cx)
                    })?;
                }
                let cfg = cfg.clone();
                let listener = Listener::new(ev, socks, move |relay: &mut Relay, cx, a| {
                    accept(relay, cx, a, &cfg)
                });
                let publisher = if i == 0 {
                    publisher(ev, &args).map_err(std::io::Error::other)?
                } else {
                    None
                };
                super::stats_timer(ev, &args);
                let mut relay = Relay::new(args.clone(), listener, publisher, udp);
                relay.peers = peers;
                Ok(relay)
            },
            |relay, cx| relay.stop(cx),
        )?;
        log(format_args!("serving on {n} loops"));
        Ok(loops)
    })?;
    log(format_args!("stopped"));
    Ok(())
}
