//! JSON calls: the request written as JSON, the reply read as JSON, the error body of a JSON
//! error reply read back (see [`rpc_wire::json`]).

use bytes::Bytes;

use crate::{Reply, RpcError};

/// `request` as a JSON body.
pub(crate) fn encode_request<Req: serde::Serialize + ?Sized>(
    request: &Req,
) -> Result<Bytes, RpcError> {
    serde_json::to_vec(request)
        .map(Bytes::from)
        .map_err(|e| RpcError::BadRequest(format!("the request cannot be written as JSON: {e}")))
}

/// The reply of a JSON call, read as `Resp`.
pub(crate) fn decode_reply<Resp: serde::de::DeserializeOwned>(
    reply: Result<Reply, RpcError>,
) -> Result<Resp, RpcError> {
    let reply = reply?;
    let expected = std::any::type_name::<Resp>();
    let content_type = reply.properties.content_type.as_ref();
    if !rpc_wire::json::is_json(content_type.map(|c| c.as_bytes())) {
        return Err(RpcError::UnexpectedReply {
            expected,
            found: match content_type {
                Some(ct) => format!("content type \"{}\"", amqp_codec::Escaped(ct.as_bytes())),
                None => "a reply without a content type".into(),
            },
        });
    }
    serde_json::from_slice(&reply.body).map_err(|e| RpcError::UnexpectedReply {
        expected,
        found: format!("JSON that does not fit: {e}"),
    })
}

/// The readable message of an error reply: the `message` of a JSON error body, else the body as
/// text.
pub(crate) fn error_message(reply: &Reply) -> String {
    let content_type = reply.properties.content_type.as_ref();
    if rpc_wire::json::is_json(content_type.map(|c| c.as_bytes())) {
        if let Ok(body) = serde_json::from_slice::<rpc_wire::json::ErrorBody>(&reply.body) {
            return body.error.message;
        }
    }
    String::from_utf8_lossy(&reply.body).into_owned()
}
