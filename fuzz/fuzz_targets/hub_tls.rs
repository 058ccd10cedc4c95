//! The `wss://` listener of a real hub: bytes go to its TLS port over
//! loopback (then the client's end), and the hub, driven on this thread,
//! must answer only in TLS records (or not at all), close, and keep no
//! connection behind. Nothing it is sent may make it panic.
//!
//! The first byte picks what the rest is:
//! - `% 3 == 0`: raw bytes on the TLS port (garbage, plain HTTP, records);
//! - `% 3 == 1`: a real ClientHello (fresh from a rustls client), then the
//!   rest: what follows a valid hello in the handshake state machine;
//! - `% 3 == 2`: a whole handshake by a real client, then the rest as the
//!   decrypted HTTP request, whose answer must be a well-formed status line.
//!
//! The certificate is made at start-up with rcgen (never committed).
#![no_main]

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use wshub::config::TlsConfig;
use wshub::{DefaultHub, HubConfig};

/// Statuses the hub may answer a request with (as `hub_http`).
const STATUSES: &[&[u8]] = &[
    b"101", b"200", b"400", b"401", b"403", b"404", b"405", b"426", b"431", b"503",
];
/// TLS record content types the hub may send: alert, handshake, data.
const RECORD_TYPES: &[u8] = &[0x15, 0x16, 0x17];
/// Turns of the hub (1 ms each at most) before the hub must have closed.
const TURNS: usize = 2000;

struct Fixture {
    hub: DefaultHub,
    addr: SocketAddr,
    client: Arc<ClientConfig>,
}

/// A CA, a certificate for `localhost` in a temp dir, a hub serving it,
/// and a client configuration trusting the CA.
fn fixture() -> Fixture {
    let dir: PathBuf = std::env::temp_dir().join(format!("wshub-fuzz-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "fuzz CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("certificate");
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).expect("write cert");
    std::fs::write(&key_file, key.serialize_pem()).expect("write key");

    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.tls = Some(TlsConfig::new(cert_file, key_file));
    config.tls_listen = "127.0.0.1:0".parse().unwrap();
    config.max_message_size = 4096;
    config.handshake_timeout = Duration::from_secs(2);
    let mut hub = DefaultHub::bind(config).expect("hub binds");
    hub.add_page("/", "text/html", &b"<p>demo</p>"[..]);
    let addr = hub.tls_local_addr().expect("a TLS listener");

    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).expect("CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    Fixture {
        hub,
        addr,
        client: Arc::new(client),
    }
}

thread_local! {
    static FIXTURE: RefCell<Fixture> = RefCell::new(fixture());
}

fn client(f: &Fixture) -> ClientConnection {
    ClientConnection::new(f.client.clone(), ServerName::try_from("localhost").unwrap())
        .expect("client session")
}

/// One hub turn, its events dropped.
fn turn(hub: &mut DefaultHub) {
    hub.poll(Some(Duration::from_millis(1))).expect("poll");
    while hub.next_event().is_some() {}
}

/// Reads what the hub sent; `true` at EOF (or a reset: the hub closed).
fn read_some(sock: &mut TcpStream, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    match sock.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => {
            into.extend_from_slice(&buf[..n]);
            false
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) => panic!("reading the hub's answer: {e}"),
    }
}

/// Sends `bytes` as they are, ends our side, and returns what came back.
fn raw(f: &mut Fixture, bytes: &[u8]) -> Vec<u8> {
    let mut sock = TcpStream::connect(f.addr).expect("loopback connect");
    sock.set_nonblocking(true).unwrap();
    let _ = sock.write(bytes);
    let _ = sock.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    for _ in 0..TURNS {
        turn(&mut f.hub);
        if read_some(&mut sock, &mut answer) {
            return answer;
        }
    }
    panic!("the hub kept the TLS connection open after the client's FIN");
}

/// A whole handshake, then `request` as plaintext; returns the decrypted
/// answer.
fn over_tls(f: &mut Fixture, request: &[u8]) -> Vec<u8> {
    let mut sock = TcpStream::connect(f.addr).expect("loopback connect");
    sock.set_nonblocking(true).unwrap();
    let mut tls = client(f);
    tls.writer().write_all(request).unwrap();
    let mut sent_all = false;
    let mut plain = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..TURNS {
        while tls.wants_write() {
            match tls.write_tls(&mut sock) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        if !tls.is_handshaking() && !tls.wants_write() && !sent_all {
            // The request is out: end our side (close_notify, then FIN).
            tls.send_close_notify();
            let _ = tls.write_tls(&mut sock);
            let _ = sock.shutdown(Shutdown::Write);
            sent_all = true;
        }
        turn(&mut f.hub);
        let mut cipher = Vec::new();
        let eof = read_some(&mut sock, &mut cipher);
        let mut rest = &cipher[..];
        while !rest.is_empty() {
            match tls.read_tls(&mut rest) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Err(e) = tls.process_new_packets() {
                // The handshake is a real client's with a real server.
                panic!("TLS error from the hub's side: {e}");
            }
            loop {
                match tls.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => plain.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
        }
        if eof {
            return plain;
        }
    }
    panic!("the hub kept the TLS connection open after close_notify and FIN");
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    FIXTURE.with(|cell| {
        let f = &mut *cell.borrow_mut();
        match pick % 3 {
            0 | 1 => {
                let mut bytes = Vec::with_capacity(data.len() + 512);
                if pick % 3 == 1 {
                    // A real ClientHello first.
                    let mut hello = client(f);
                    hello.write_tls(&mut bytes).unwrap();
                }
                bytes.extend_from_slice(data);
                let answer = raw(f, &bytes);
                if let Some(&first) = answer.first() {
                    assert!(
                        RECORD_TYPES.contains(&first) && answer.get(1).is_none_or(|&v| v == 3),
                        "not a TLS record from the TLS port: {:?}",
                        &answer[..answer.len().min(16)]
                    );
                }
            }
            _ => {
                let answer = over_tls(f, data);
                if !answer.is_empty() {
                    assert!(
                        answer.starts_with(b"HTTP/1.1 ")
                            && answer.len() >= 12
                            && STATUSES.contains(&&answer[9..12]),
                        "bad status line over TLS: {:?}",
                        String::from_utf8_lossy(&answer[..answer.len().min(80)])
                    );
                }
            }
        }
        assert_eq!(f.hub.connections(), 0, "a TLS connection was left open");
    });
});
