//! sigil-shim: see the crate README. Starts the configured services and runs until killed.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sigil_shim::config::{BlobStore, Cli};
use sigil_shim::store::Backend;
use sigil_shim::{blobs, creds, crs, egress, log, logsink, relay, s3, store};

fn run() -> Result<(), String> {
    let settings = Cli::parse().settings().map_err(|e| e.to_string())?;
    let idle = settings.idle_timeout;
    let max = settings.max_connections;
    if let Some((blob_addr, at)) = &settings.blobs {
        let st: Arc<dyn Backend> = match at {
            BlobStore::Dir(dir) => {
                let st = store::Store::open(dir, settings.store)
                    .map_err(|e| format!("state dir {}: {e}", dir.display()))?;
                log::info("blobs", &format!("{} blobs in {}", st.len(), dir.display()));
                Arc::new(st)
            }
            BlobStore::S3(cfg) => {
                let source = settings.credentials_source.clone();
                let fetch = Box::new(move || creds::fetch(&source));
                let st = s3::S3Store::open(cfg.clone(), settings.store, fetch)
                    .map_err(|e| e.to_string())?;
                log::info("blobs", &format!("{} blobs in {cfg}", st.len()));
                Arc::new(st)
            }
        };
        if let Some(file) = &settings.crs_file {
            let (points, written, kept) = crs::import(&*st, file).map_err(|e| e.to_string())?;
            log::info(
                "blobs",
                &format!(
                    "CRS {}: {points} points ({written} chunks stored, {kept} already present)",
                    file.display()
                ),
            );
        }
        relay::spawn_service("blobs", blob_addr, blobs::MAX_CONNECTIONS, move |s, _| {
            blobs::serve_conn(&*st, s, idle)
        })
        .map_err(|e| e.to_string())?;
    }
    if let Some((listen, upstream)) = settings.ingress.clone() {
        let per_source = settings.max_connections_per_source;
        let proxy_header = settings.ingress_proxy_header;
        relay::spawn_service_per_source("ingress", &listen, max, per_source, move |s, peer| {
            if proxy_header {
                relay::forward_with_source(s, peer, &upstream, idle)
            } else {
                relay::forward(s, &upstream, idle)
            }
        })
        .map_err(|e| e.to_string())?;
    }
    if let Some((listen, allow)) = settings.egress.clone() {
        log::info("egress", &format!("allowed: {}", allow.join(", ")));
        let resolve = settings.egress_resolve.clone();
        for (d, to) in &resolve {
            log::info(
                "egress",
                &format!("{d} is connected to {to} (egress_resolve)"),
            );
        }
        relay::spawn_service("egress", &listen, max, move |s, _| {
            egress::handle(s, &allow, &resolve, idle)
        })
        .map_err(|e| e.to_string())?;
    }
    if let Some(listen) = &settings.logs {
        relay::spawn_service("logs", listen, logsink::MAX_CONNECTIONS, logsink::handle)
            .map_err(|e| e.to_string())?;
    }
    if let Some((listen, source)) = settings.credentials.clone() {
        relay::spawn_service("credentials", &listen, 4, move |s, _| {
            creds::handle(s, &source)
        })
        .map_err(|e| e.to_string())?;
    }
    // The services run on their own threads; this one only keeps the process alive.
    loop {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigil-shim: {e}");
            ExitCode::FAILURE
        }
    }
}
