use std::fmt;

/// Request id minted by the supervisor and echoed in the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u32);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// The entity a request is addressed to: `""` for the worker itself, else an entity id.
    HandlerId
);
string_id!(
    /// Router id, minted by the supervisor (a UUID in practice).
    RouterId
);

string_id!(
    /// Transport id (WebRtcTransport or PlainTransport), unique within a worker.
    TransportId
);
string_id!(
    /// Producer id, unique within a worker.
    ProducerId
);
string_id!(
    /// Consumer id, unique within a worker.
    ConsumerId
);
string_id!(
    /// DataProducer id, unique within a worker.
    DataProducerId
);
string_id!(
    /// DataConsumer id, unique within a worker.
    DataConsumerId
);
string_id!(
    /// WebRtcServer id, unique within a worker.
    WebRtcServerId
);
string_id!(
    /// RtpObserver id (AudioLevelObserver, ActiveSpeakerObserver), unique within a worker.
    RtpObserverId
);

macro_rules! handler_from {
    ($($t:ident),*) => {$(
        impl From<&$t> for HandlerId {
            fn from(id: &$t) -> Self {
                Self(id.0.clone())
            }
        }
    )*};
}
handler_from!(
    TransportId,
    ProducerId,
    ConsumerId,
    DataProducerId,
    DataConsumerId,
    WebRtcServerId,
    RtpObserverId
);

impl HandlerId {
    /// The worker itself.
    pub fn worker() -> Self {
        Self(String::new())
    }
}

impl From<&RouterId> for HandlerId {
    fn from(id: &RouterId) -> Self {
        Self(id.0.clone())
    }
}
