//! The fault layer: sits between nisshi's frame decoding and its API routes,
//! so every decoded request passes the [`FaultBook`] first. A faulted request
//! is answered here with a well-formed error response of its own API and
//! version (the client sees a broker error, not a broken connection), held,
//! or served as usual.

use nisshi_broker::Error;
use nisshi_sans_io::{Body, Frame, FrameInput, Header};
use rama::Service;

use super::answer;
use super::book::{Decision, FaultBook, Request};
use super::fault::Api;

/// Applies the fault book to each request before `inner` serves it.
#[derive(Debug, Clone)]
pub struct FaultService<S> {
    inner: S,
    book: FaultBook,
}

impl<S> FaultService<S> {
    /// Wraps `inner` (nisshi's route service).
    pub fn new(inner: S, book: FaultBook) -> FaultService<S> {
        FaultService { inner, book }
    }
}

impl<S> Service<FrameInput> for FaultService<S>
where
    S: Service<FrameInput, Output = Frame, Error = Error>,
{
    type Output = Frame;
    type Error = Error;

    async fn serve(&self, input: FrameInput) -> Result<Frame, Error> {
        let decision = match request(&input.frame) {
            Some(request) => {
                if let (Api::JoinGroup, Some(client), Some(group)) = (request.api, request.client_id, request.group_id) {
                    self.book.joined(client, group);
                }
                self.book.decide(&request)
            }
            None => Decision::Serve,
        };
        match decision {
            Decision::Serve => self.inner.serve(input).await,
            Decision::Hold(delay) => {
                tokio::time::sleep(delay).await;
                self.inner.serve(input).await
            }
            Decision::Answer(error) => {
                let correlation_id = input.frame.correlation_id()?;
                let body = answer::error_response(&input.frame.body, error.code())?;
                Ok(Frame { size: 0, header: Header::Response { correlation_id }, body })
            }
        }
    }
}

/// The request as the fault book sees it, if a fault can apply to its API.
fn request(frame: &Frame) -> Option<Request<'_>> {
    let api = Api::of_key(frame.api_key().ok()?)?;
    let client_id = frame.client_id().ok().flatten();
    let (group_id, member_id) = match &frame.body {
        Body::HeartbeatRequest(r) => (Some(r.group_id.as_str()), Some(r.member_id.as_str())),
        Body::JoinGroupRequest(r) => (Some(r.group_id.as_str()), Some(r.member_id.as_str())),
        Body::SyncGroupRequest(r) => (Some(r.group_id.as_str()), Some(r.member_id.as_str())),
        Body::OffsetCommitRequest(r) => (Some(r.group_id.as_str()), r.member_id.as_deref()),
        _ => (None, None),
    };
    Some(Request { api, client_id, group_id, member_id })
}
