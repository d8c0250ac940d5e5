use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use ferrosfu_fbs::{
    Request, RequestBody, RequestFailure, Response, ResponseBody, RouterId, WorkerDump,
};

use crate::router::Router;

/// Facts about the process the core runs in, given by the shell.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub pid: u32,
    pub core: u32,
}

#[derive(Debug)]
pub enum Input {
    /// A decoded channel request for the core (see the drive contract for those it never gets).
    Command(Request),
    /// The time returned by [`WorkerCore::poll_timeout`] has come.
    Timeout,
}

#[derive(Debug, PartialEq)]
pub enum Output {
    Reply(Response),
    Notify(ferrosfu_fbs::Notification),
    /// `worker.close` was handled: everything is closed and the reply was queued before this.
    Closed,
}

/// The worker's state: its routers and the outputs waiting to be polled.
#[derive(Debug)]
pub struct WorkerCore {
    config: CoreConfig,
    routers: BTreeMap<RouterId, Router>,
    outputs: VecDeque<Output>,
    closed: bool,
}

impl WorkerCore {
    pub fn new(config: CoreConfig) -> Self {
        Self {
            config,
            routers: BTreeMap::new(),
            outputs: VecDeque::new(),
            closed: false,
        }
    }

    pub fn handle_input(&mut self, input: Input, _now: Instant) {
        match input {
            Input::Command(req) => {
                let id = req.id;
                let result = if self.closed {
                    Err(RequestFailure::failed("worker is closed"))
                } else {
                    self.handle_request(req)
                };
                self.outputs
                    .push_back(Output::Reply(Response { id, result }));
                if self.closed {
                    self.outputs.push_back(Output::Closed);
                }
            }
            Input::Timeout => {}
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the core next needs [`Input::Timeout`]; `None` when it has no timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    pub fn router_ids(&self) -> impl Iterator<Item = &RouterId> {
        self.routers.keys()
    }

    fn handle_request(&mut self, req: Request) -> Result<ResponseBody, RequestFailure> {
        match req.body {
            RequestBody::WorkerDump => Ok(ResponseBody::WorkerDump(WorkerDump {
                pid: self.config.pid,
                core: self.config.core,
                router_ids: self.routers.keys().cloned().collect(),
            })),
            RequestBody::WorkerCreateRouter { router_id } => {
                if router_id.as_str().is_empty() {
                    return Err(RequestFailure::invalid_argument("empty router id"));
                }
                if self.routers.contains_key(&router_id) {
                    return Err(RequestFailure::invalid_argument(format!(
                        "a router with id {router_id} already exists"
                    )));
                }
                tracing::debug!(target: "router", id = %router_id, "router created");
                self.routers
                    .insert(router_id.clone(), Router::new(router_id));
                Ok(ResponseBody::None)
            }
            RequestBody::WorkerClose => {
                for (_, router) in std::mem::take(&mut self.routers) {
                    router.close();
                }
                self.closed = true;
                Ok(ResponseBody::None)
            }
            RequestBody::RouterDump => Ok(ResponseBody::RouterDump(self.router(&req)?.dump())),
            RequestBody::RouterClose => {
                let id = self.router(&req)?.id().clone();
                if let Some(router) = self.routers.remove(&id) {
                    router.close();
                }
                Ok(ResponseBody::None)
            }
            RequestBody::WorkerGetResourceUsage | RequestBody::WorkerUpdateSettings(_) => {
                Err(RequestFailure::failed(format!(
                    "{} is handled by the worker shell, not the core",
                    req.body.method()
                )))
            }
            other => Err(RequestFailure::failed(format!(
                "{} is not implemented yet",
                other.method()
            ))),
        }
    }

    fn router(&self, req: &Request) -> Result<&Router, RequestFailure> {
        self.routers
            .get(&RouterId::new(req.handler_id.as_str()))
            .ok_or_else(|| {
                RequestFailure::invalid_argument(format!(
                    "no router with id {:?}",
                    req.handler_id.as_str()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosfu_fbs::{ErrorKind, HandlerId, RequestId};

    fn core() -> WorkerCore {
        WorkerCore::new(CoreConfig { pid: 7, core: 3 })
    }

    fn call(core: &mut WorkerCore, id: u32, handler: &str, body: RequestBody) -> Response {
        let req = Request {
            id: RequestId(id),
            handler_id: HandlerId::new(handler),
            body,
        };
        core.handle_input(Input::Command(req), Instant::now());
        match core.poll_output() {
            Some(Output::Reply(r)) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn create_dump_close_router() {
        let mut c = core();
        let rid = RouterId::new("r1");
        let r = call(
            &mut c,
            1,
            "",
            RequestBody::WorkerCreateRouter {
                router_id: rid.clone(),
            },
        );
        assert_eq!(r.result, Ok(ResponseBody::None));

        let r = call(&mut c, 2, "", RequestBody::WorkerDump);
        let Ok(ResponseBody::WorkerDump(d)) = r.result else {
            panic!("{r:?}")
        };
        assert_eq!((d.pid, d.core, d.router_ids), (7, 3, vec![rid.clone()]));

        let r = call(&mut c, 3, "r1", RequestBody::RouterDump);
        assert_eq!(
            r.result,
            Ok(ResponseBody::RouterDump(ferrosfu_fbs::RouterDump {
                id: rid,
                transport_ids: vec![]
            }))
        );

        let r = call(&mut c, 4, "r1", RequestBody::RouterClose);
        assert_eq!(r.result, Ok(ResponseBody::None));
        assert_eq!(c.router_ids().count(), 0);
        assert!(c.poll_output().is_none());
    }

    #[test]
    fn bad_requests_get_typed_errors() {
        let mut c = core();
        let r = call(&mut c, 1, "nope", RequestBody::RouterDump);
        assert_eq!(r.result.unwrap_err().kind, ErrorKind::InvalidArgument);
        let r = call(
            &mut c,
            2,
            "",
            RequestBody::WorkerCreateRouter {
                router_id: "".into(),
            },
        );
        assert_eq!(r.result.unwrap_err().kind, ErrorKind::InvalidArgument);
        call(
            &mut c,
            3,
            "",
            RequestBody::WorkerCreateRouter {
                router_id: "a".into(),
            },
        );
        let r = call(
            &mut c,
            4,
            "",
            RequestBody::WorkerCreateRouter {
                router_id: "a".into(),
            },
        );
        assert_eq!(r.result.unwrap_err().kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn close_closes_everything_and_says_so() {
        let mut c = core();
        call(
            &mut c,
            1,
            "",
            RequestBody::WorkerCreateRouter {
                router_id: "a".into(),
            },
        );
        let r = call(&mut c, 2, "", RequestBody::WorkerClose);
        assert_eq!(r.result, Ok(ResponseBody::None));
        assert_eq!(c.poll_output(), Some(Output::Closed));
        assert_eq!(c.router_ids().count(), 0);
    }
}
