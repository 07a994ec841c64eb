//! A resolver that follows the system's configuration: `/etc/resolv.conf` and
//! `/etc/hosts` read again when they change, as glibc (since 2.26) and c-ares do. The
//! files are looked at on the loop, when a lookup starts, at most once per
//! [`SystemFiles::check_every`]: a `stat` of each, and a read only when one changed. No
//! thread, no inotify. A lookup in flight keeps the configuration it started with.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use super::{Hosts, Resolver, ResolverOptions};
use crate::ev::Ctx;

/// Where a resolver made by [`Resolver::following`] reads its configuration, and how
/// often it looks for changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemFiles {
    /// resolv.conf: servers, search list, `options`. Default `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// The hosts file. Default `/etc/hosts`.
    pub hosts: PathBuf,
    /// The files are looked at again (a `stat` each) at most this often, when a lookup
    /// starts. Default 2 s.
    pub check_every: Duration,
}

impl Default for SystemFiles {
    fn default() -> SystemFiles {
        SystemFiles {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            hosts: PathBuf::from("/etc/hosts"),
            check_every: Duration::from_secs(2),
        }
    }
}

/// What identifies one version of a file: replaced (a new inode), rewritten (a new
/// modification time or size), or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(Option<(u64, u64, SystemTime, u64)>);

fn stamp(path: &std::path::Path) -> Stamp {
    Stamp(std::fs::metadata(path).ok().map(|m| {
        (
            m.dev(),
            m.ino(),
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            m.len(),
        )
    }))
}

/// The files a resolver follows, and the versions it last read.
pub(super) struct Follow {
    files: SystemFiles,
    checked: Instant,
    stamps: [Stamp; 2],
}

impl Follow {
    /// Reads the files: the configuration, and what follows them from now on.
    fn start(files: SystemFiles) -> (Follow, ResolverOptions) {
        let stamps = [stamp(&files.resolv_conf), stamp(&files.hosts)];
        let options = read(&files);
        let f = Follow {
            files,
            checked: Instant::now(),
            stamps,
        };
        (f, options)
    }

    /// The configuration read again, if it is time to look and a file changed.
    pub(super) fn changed(&mut self, now: Instant) -> Option<ResolverOptions> {
        if now.duration_since(self.checked) < self.files.check_every {
            return None;
        }
        self.checked = now;
        let stamps = [stamp(&self.files.resolv_conf), stamp(&self.files.hosts)];
        if stamps == self.stamps {
            return None;
        }
        self.stamps = stamps;
        Some(read(&self.files))
    }
}

/// The configuration in `files` (a missing resolv.conf gives the defaults, the local
/// server on port 53, as glibc does; a missing hosts file, no hosts).
pub(super) fn read(files: &SystemFiles) -> ResolverOptions {
    let text = std::fs::read(&files.resolv_conf).unwrap_or_default();
    let mut c = ResolverOptions::from_resolv_conf(&text);
    if let Ok(h) = std::fs::read_to_string(&files.hosts) {
        c.hosts = Hosts::parse(&h);
    }
    c
}

impl<S: 'static> Resolver<S> {
    /// A resolver with the system's configuration that follows it: `/etc/resolv.conf`
    /// and `/etc/hosts`, read again when they change (see [`following`](Self::following)).
    /// What a long-running daemon wants; [`Resolver::new`] takes options of your own,
    /// which are never replaced.
    pub fn system(cx: &Ctx<S>) -> Resolver<S> {
        Resolver::following(cx, SystemFiles::default())
    }

    /// A resolver configured from `files`, read again when they change: looked at (a
    /// `stat` each) when a lookup starts, at most once per `check_every`. Lookups in flight
    /// keep the configuration they started with; what is known of a server's health is
    /// kept for the servers the new configuration still lists.
    ///
    /// ```no_run
    /// use evnet::dns::{Resolver, SystemFiles};
    /// use evnet::ev::Loop;
    ///
    /// let ev = Loop::<()>::new()?;
    /// let dns = Resolver::following(&ev, SystemFiles {
    ///     resolv_conf: "/run/my-daemon/resolv.conf".into(),
    ///     ..SystemFiles::default()
    /// });
    /// # drop(dns);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn following(cx: &Ctx<S>, files: SystemFiles) -> Resolver<S> {
        let (follow, options) = Follow::start(files);
        let r = Resolver::new(cx, options);
        r.inner.borrow_mut().follow = Some(follow);
        r
    }

    /// A resolver that follows files: takes their new version, if it is time to look and
    /// one changed. Lookups in flight keep their own configuration.
    pub(super) fn refresh(&self) {
        let mut g = self.inner.borrow_mut();
        let g = &mut *g;
        let Some(options) = g.follow.as_mut().and_then(|f| f.changed(Instant::now())) else {
            return;
        };
        g.health.retain(|addr, _| options.servers.contains(addr));
        g.config = Rc::new(options);
    }
}
