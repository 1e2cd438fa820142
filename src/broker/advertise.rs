//! Advertised addresses per listener: a Kafka client reconnects to the
//! broker address the broker advertises (Metadata, FindCoordinator,
//! DescribeCluster), not to its bootstrap address. A connection on one of
//! the per-link listeners gets that link's proxy advertised instead, so a
//! client that came in through its proxy stays behind it — and a fault on
//! that link cuts that client only.

use std::net::SocketAddr;

use nisshi_broker::Error;
use nisshi_sans_io::{Body, Frame, FrameInput};
use rama::Service;

/// Rewrites the broker addresses in the responses `inner` gives.
#[derive(Debug, Clone)]
pub struct AdvertiseService<S> {
    inner: S,
    advertised: Option<SocketAddr>,
}

impl<S> AdvertiseService<S> {
    /// Advertises `advertised` (the listener's own address if `None`:
    /// nothing is rewritten).
    pub fn new(inner: S, advertised: Option<SocketAddr>) -> AdvertiseService<S> {
        AdvertiseService { inner, advertised }
    }
}

impl<S> Service<FrameInput> for AdvertiseService<S>
where
    S: Service<FrameInput, Output = Frame, Error = Error>,
{
    type Output = Frame;
    type Error = Error;

    async fn serve(&self, input: FrameInput) -> Result<Frame, Error> {
        let mut frame = self.inner.serve(input).await?;
        if let Some(advertised) = self.advertised {
            rewrite(&mut frame.body, &advertised.ip().to_string(), i32::from(advertised.port()));
        }
        Ok(frame)
    }
}

/// Puts `host:port` wherever `body` names a broker (there is one broker).
pub fn rewrite(body: &mut Body, host: &str, port: i32) {
    match body {
        Body::MetadataResponse(response) => {
            for broker in response.brokers.iter_mut().flatten() {
                broker.host = host.to_string();
                broker.port = port;
            }
        }
        Body::FindCoordinatorResponse(response) => {
            if response.host.is_some() {
                response.host = Some(host.to_string());
            }
            if response.port.is_some() {
                response.port = Some(port);
            }
            for coordinator in response.coordinators.iter_mut().flatten() {
                coordinator.host = host.to_string();
                coordinator.port = port;
            }
        }
        Body::DescribeClusterResponse(response) => {
            for broker in response.brokers.iter_mut().flatten() {
                broker.host = host.to_string();
                broker.port = port;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use nisshi_sans_io::find_coordinator_response::Coordinator;
    use nisshi_sans_io::metadata_response::MetadataResponseBroker;
    use nisshi_sans_io::{FindCoordinatorResponse, MetadataResponse};

    use super::*;

    #[test]
    fn every_broker_address_an_answer_names_is_the_links() {
        let broker = MetadataResponseBroker::default().node_id(111).host("127.0.0.1".into()).port(9092).rack(None);
        let mut metadata: Body = MetadataResponse::default().brokers(Some(vec![broker])).into();
        rewrite(&mut metadata, "127.0.0.2", 4000);
        let Body::MetadataResponse(metadata) = metadata else { unreachable!() };
        let broker = &metadata.brokers.unwrap()[0];
        assert_eq!((broker.host.as_str(), broker.port), ("127.0.0.2", 4000));

        let old = FindCoordinatorResponse::default().host(Some("127.0.0.1".into())).port(Some(9092));
        let mut old: Body = old.into();
        rewrite(&mut old, "127.0.0.2", 4000);
        let Body::FindCoordinatorResponse(old) = old else { unreachable!() };
        assert_eq!((old.host.as_deref(), old.port), (Some("127.0.0.2"), Some(4000)));

        let coordinator = Coordinator::default().key("shop.mypage".into()).node_id(111).host("127.0.0.1".into()).port(9092).error_code(0).error_message(None);
        let mut new: Body = FindCoordinatorResponse::default().coordinators(Some(vec![coordinator])).into();
        rewrite(&mut new, "127.0.0.2", 4000);
        let Body::FindCoordinatorResponse(new) = new else { unreachable!() };
        assert_eq!(new.host, None, "v4+ has no top-level address");
        let coordinator = &new.coordinators.unwrap()[0];
        assert_eq!((coordinator.host.as_str(), coordinator.port), ("127.0.0.2", 4000));
    }
}
