//! UPnP IGD codec: SSDP answers, descriptions, SOAP requests and replies,
//! and one test per rejection reason.

use moss_nat::upnp::*;
use std::net::Ipv4Addr;

const SSDP_OK: &str = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:1::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://192.168.7.1:2869/rootDesc.xml\r\n\r\n";

fn base() -> Location {
    parse_url("http://192.168.7.1:2869/rootDesc.xml").unwrap()
}

fn description(services: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device>\
         <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>\
         <deviceList><device><deviceList><device><serviceList>{services}</serviceList>\
         </device></deviceList></device></deviceList></device></root>"
    )
}

fn service(ty: &str, ctl: &str) -> String {
    format!(
        "<service><serviceType>{ty}</serviceType><serviceId>urn:upnp-org:serviceId:X</serviceId>\
         <controlURL>{ctl}</controlURL><eventSubURL>/evt</eventSubURL><SCPDURL>/scpd.xml</SCPDURL></service>"
    )
}

fn http(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn an_ssdp_answer_gives_the_description_location() {
    let l = parse_search_response(SSDP_OK.as_bytes()).unwrap();
    assert_eq!(l.addr, "192.168.7.1:2869".parse().unwrap());
    assert_eq!(l.path, "/rootDesc.xml");
    let req = String::from_utf8(search_request()).unwrap();
    assert!(req.starts_with("M-SEARCH * HTTP/1.1\r\n"));
    assert!(req.contains("ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"));
    assert!(req.ends_with("\r\n\r\n"));
}

#[test]
fn ssdp_rejections() {
    assert_eq!(
        parse_search_response(&vec![b'a'; MAX_SSDP + 1]),
        Err(UpnpError::TooLong(MAX_SSDP + 1))
    );
    assert_eq!(
        parse_search_response(&[0xff, 0xfe, b'\r']),
        Err(UpnpError::NotText)
    );
    assert_eq!(
        parse_search_response(b"HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\n"),
        Err(UpnpError::HeadersUnterminated)
    );
    assert_eq!(
        parse_search_response(b"NOTIFY * HTTP/1.1\r\n\r\n"),
        Err(UpnpError::BadStatusLine)
    );
    assert_eq!(
        parse_search_response(b"HTTP/1.1 404 Not Found\r\n\r\n"),
        Err(UpnpError::SsdpStatus(404))
    );
    assert_eq!(
        parse_search_response(b"HTTP/1.1 200 OK\r\nST: x\r\n\r\n"),
        Err(UpnpError::MissingHeader("LOCATION"))
    );
}

#[test]
fn urls_are_http_on_an_ipv4_literal_only() {
    assert_eq!(parse_url("http://10.0.0.1").unwrap().path, "/");
    assert_eq!(parse_url("http://10.0.0.1").unwrap().addr.port(), 80);
    for bad in [
        "https://10.0.0.1/x",
        "http://router.local/x",
        "http://10.0.0.1:0/x",
        "http://10.0.0.1:99999/x",
        "http://[::1]:80/x",
        "http://10.0.0.1/a b",
    ] {
        assert!(matches!(parse_url(bad), Err(UpnpError::BadUrl(_))), "{bad}");
    }
    let long = format!("http://10.0.0.1/{}", "a".repeat(600));
    assert!(matches!(parse_url(&long), Err(UpnpError::BadUrl(_))));
}

#[test]
fn the_description_yields_the_preferred_wan_service() {
    let d = description(&format!(
        "{}{}{}",
        service("urn:schemas-upnp-org:service:Layer3Forwarding:1", "/l3f"),
        service("urn:schemas-upnp-org:service:WANPPPConnection:1", "/ppp"),
        service(
            "urn:schemas-upnp-org:service:WANIPConnection:1",
            "/ctl/IPConn"
        ),
    ));
    let c = parse_description(&d, &base()).unwrap();
    assert_eq!(c.service, "urn:schemas-upnp-org:service:WANIPConnection:1");
    assert_eq!(c.url.addr, "192.168.7.1:2869".parse().unwrap());
    assert_eq!(c.url.path, "/ctl/IPConn");
    // An absolute control URL on the gateway's own host is fine.
    let d = description(&service(
        "urn:schemas-upnp-org:service:WANIPConnection:2",
        "http://192.168.7.1:5000/ctl",
    ));
    let c = parse_description(&d, &base()).unwrap();
    assert_eq!(c.url.addr.port(), 5000);
}

#[test]
fn description_rejections() {
    assert_eq!(
        parse_description(&description(""), &base()),
        Err(UpnpError::NoWanService)
    );
    let d = description(&service(
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "http://198.51.100.9/ctl",
    ));
    // A description cannot send our requests to a third party.
    assert!(matches!(
        parse_description(&d, &base()),
        Err(UpnpError::BadUrl(_))
    ));
    let unterminated = "<root><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1";
    assert_eq!(
        parse_description(unterminated, &base()),
        Err(UpnpError::NoWanService)
    );
}

#[test]
fn soap_requests_carry_the_action_and_its_arguments() {
    let c = Control {
        service: WAN_SERVICES[1],
        url: parse_url("http://192.168.7.1:2869/ctl/IPConn").unwrap(),
    };
    let add = Action::AddUdp {
        external_port: 4301,
        internal_port: 4301,
        client: Ipv4Addr::new(192, 168, 7, 2),
        lease: 6,
    };
    let r = String::from_utf8(add.request(&c)).unwrap();
    assert!(r.starts_with("POST /ctl/IPConn HTTP/1.1\r\nHost: 192.168.7.1:2869\r\n"));
    assert!(r.contains(
        "SOAPAction: \"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\"\r\n"
    ));
    for part in [
        "<NewExternalPort>4301</NewExternalPort>",
        "<NewProtocol>UDP</NewProtocol>",
        "<NewInternalClient>192.168.7.2</NewInternalClient>",
        "<NewLeaseDuration>6</NewLeaseDuration>",
    ] {
        assert!(r.contains(part), "{part}");
    }
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    let del = String::from_utf8(
        Action::DeleteUdp {
            external_port: 4301,
        }
        .request(&c),
    )
    .unwrap();
    assert!(del.contains("#DeletePortMapping\""));
}

#[test]
fn soap_replies_decode_and_faults_carry_their_code() {
    let ok = http(
        "200 OK",
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
         <u:GetExternalIPAddressResponse xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\">\
         <NewExternalIPAddress>192.0.32.107</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>",
    );
    assert_eq!(
        Action::GetExternalIp.parse_reply(&ok),
        Ok(Some(Ipv4Addr::new(192, 0, 32, 107)))
    );
    let added = http(
        "200 OK",
        "<s:Envelope><s:Body><u:AddPortMappingResponse xmlns:u=\"x\"/></s:Body></s:Envelope>",
    );
    let add = Action::AddUdp {
        external_port: 1,
        internal_port: 1,
        client: Ipv4Addr::LOCALHOST,
        lease: 1,
    };
    assert_eq!(add.parse_reply(&added), Ok(None));
    let fault = http(
        "500 Internal Server Error",
        "<s:Envelope><s:Body><s:Fault><detail><UPnPError><errorCode>718</errorCode>\
         <errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>",
    );
    assert_eq!(
        add.parse_reply(&fault),
        Err(UpnpError::Fault {
            code: 718,
            status: 500
        })
    );
}

#[test]
fn soap_reply_rejections() {
    let a = Action::GetExternalIp;
    assert_eq!(
        a.parse_reply(&vec![b'x'; MAX_HTTP + 1]),
        Err(UpnpError::TooLong(MAX_HTTP + 1))
    );
    assert_eq!(
        a.parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort"),
        Err(UpnpError::BadLength)
    );
    assert_eq!(
        a.parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
        Err(UpnpError::BadLength)
    );
    assert_eq!(
        a.parse_reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
        Err(UpnpError::Chunked)
    );
    assert_eq!(
        a.parse_reply(&http("200 OK", "<s:Envelope></s:Envelope>")),
        Err(UpnpError::BadResponse("response"))
    );
    let no_ip = http(
        "200 OK",
        "<u:GetExternalIPAddressResponse><NewExternalIPAddress>not-an-ip</NewExternalIPAddress></u:GetExternalIPAddressResponse>",
    );
    assert_eq!(
        a.parse_reply(&no_ip),
        Err(UpnpError::BadResponse("NewExternalIPAddress"))
    );
    assert_eq!(
        a.parse_reply(&http("500 Internal Server Error", "")),
        Err(UpnpError::Fault {
            code: 0,
            status: 500
        })
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    use proptest::prelude::*;
    proptest!(|(d in proptest::collection::vec(any::<u8>(), 0..600))| {
        let _ = parse_search_response(&d);
        let _ = Action::GetExternalIp.parse_reply(&d);
        if let Ok(s) = std::str::from_utf8(&d) {
            let _ = parse_description(s, &base());
            let _ = parse_url(s);
        }
    });
}
