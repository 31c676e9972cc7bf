//! The two ends of an exchange as state machines without I/O.
//!
//! [`Requester`] (the dock): one request at a time, each with a fresh id;
//! sent again with the same id after a timeout, a damaged answer or the
//! recorder's [`Status::Damaged`] reply, up to a retry limit; late answers to
//! earlier ids are ignored. [`Responder`] (the recorder): answers each
//! request once, and answers a repeated id with the same bytes without doing
//! the work again, so a retried `DeleteFile` or `SyncDevTime` is harmless.

use std::time::{Duration, Instant};

use crate::frame::{Decoded, Frame, TooLarge, RESPONSE_BIT};
use crate::message::{Answer, DecodeError, Request, Status};

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// No usable answer after every attempt.
    #[error("no answer to command 0x{code:02x} after {attempts} attempts of {timeout:?} each")]
    TimedOut {
        /// Command code.
        code: u8,
        /// Attempts made.
        attempts: u32,
        /// Wait per attempt.
        timeout: Duration,
    },
    /// A sound frame for this request whose payload does not decode: the
    /// recorder speaks something else.
    #[error("answer to command 0x{code:02x} does not decode: {error}")]
    Malformed {
        /// Command code.
        code: u8,
        /// What was wrong.
        error: DecodeError,
    },
    /// The request could not be framed.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

/// What the requester wants done next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes (a first send or a retry).
    Send(Vec<u8>),
    /// The exchange is over with this answer.
    Answered(Answer),
    /// The exchange failed.
    Failed(ExchangeError),
    /// Nothing to do: keep reading until the deadline.
    Wait,
}

#[derive(Debug)]
struct Outstanding {
    code: u8,
    id: u16,
    bytes: Vec<u8>,
    attempts: u32,
    deadline: Instant,
}

/// Host side: requests, retries, matching answers to requests.
#[derive(Debug)]
pub struct Requester {
    next_id: u16,
    timeout: Duration,
    max_attempts: u32,
    outstanding: Option<Outstanding>,
    retries: u64,
}

impl Requester {
    /// A requester that waits `timeout` per attempt and tries at most `max_attempts` times.
    pub fn new(timeout: Duration, max_attempts: u32) -> Self {
        Self {
            next_id: 1,
            timeout,
            max_attempts: max_attempts.max(1),
            outstanding: None,
            retries: 0,
        }
    }

    /// Requests sent again so far.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// Starts an exchange (abandoning any unfinished one); returns the bytes to send.
    pub fn start(&mut self, req: &Request, now: Instant) -> Result<Vec<u8>, ExchangeError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let bytes = Frame {
            code: req.code(),
            id,
            payload: req.encode(),
        }
        .encode()?;
        self.outstanding = Some(Outstanding {
            code: req.code(),
            id,
            bytes: bytes.clone(),
            attempts: 1,
            deadline: now + self.timeout,
        });
        Ok(bytes)
    }

    /// When the current attempt times out, if an exchange is running.
    pub fn deadline(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.deadline)
    }

    fn retry(&mut self, now: Instant) -> Step {
        let Some(o) = self.outstanding.as_mut() else {
            return Step::Wait;
        };
        if o.attempts >= self.max_attempts {
            let err = ExchangeError::TimedOut {
                code: o.code,
                attempts: o.attempts,
                timeout: self.timeout,
            };
            self.outstanding = None;
            return Step::Failed(err);
        }
        o.attempts += 1;
        o.deadline = now + self.timeout;
        self.retries += 1;
        Step::Send(o.bytes.clone())
    }

    /// The deadline passed: send again, or give up.
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        match &self.outstanding {
            Some(o) if now >= o.deadline => self.retry(now),
            _ => Step::Wait,
        }
    }

    /// Something arrived from the recorder.
    pub fn on_decoded(&mut self, decoded: Decoded, now: Instant) -> Step {
        let Some(o) = &self.outstanding else {
            return Step::Wait;
        };
        let (code, id) = (o.code, o.id);
        match decoded {
            Decoded::Damaged { code: c, id: i } if i == id && c == code | RESPONSE_BIT => {
                self.retry(now)
            }
            Decoded::Frame(f) if f.id == id && f.code == code | RESPONSE_BIT => {
                match Answer::decode(f.code, &f.payload) {
                    Ok(Answer::Err {
                        status: Status::Damaged,
                        ..
                    }) => self.retry(now),
                    Ok(answer) => {
                        self.outstanding = None;
                        Step::Answered(answer)
                    }
                    Err(error) => {
                        self.outstanding = None;
                        Step::Failed(ExchangeError::Malformed { code, error })
                    }
                }
            }
            // A late answer to an earlier attempt, or noise shaped like a frame.
            _ => Step::Wait,
        }
    }
}

/// Recorder side: decodes requests, answers repeats from its cache.
#[derive(Debug, Default)]
pub struct Responder {
    last: Option<(u8, u16, Vec<u8>)>,
}

/// What the responder wants done with a received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A new request: handle it, then pass the answer to [`Responder::answer`].
    Request {
        /// Its id.
        id: u16,
        /// The request.
        request: Request,
    },
    /// Write these bytes (a cached answer, a NAK or a decode refusal).
    Reply(Vec<u8>),
    /// Not for the recorder (a response frame): ignore.
    Ignore,
}

impl Responder {
    /// A responder with nothing cached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies what the decoder produced.
    pub fn on_decoded(&mut self, decoded: Decoded) -> Incoming {
        match decoded {
            Decoded::Damaged { code, id } if code & RESPONSE_BIT == 0 => {
                // Not cached: the retry that follows must be handled.
                let nak = Answer::Err {
                    status: Status::Damaged,
                    reason: "request frame failed its CRC; send it again".into(),
                };
                self.reply(code, id, &nak)
                    .map_or(Incoming::Ignore, Incoming::Reply)
            }
            Decoded::Damaged { .. } => Incoming::Ignore,
            Decoded::Frame(f) if f.is_response() => Incoming::Ignore,
            Decoded::Frame(f) => {
                if let Some((code, id, bytes)) = &self.last {
                    if *code == f.code && *id == f.id {
                        return Incoming::Reply(bytes.clone());
                    }
                }
                match Request::decode(f.code, &f.payload) {
                    Ok(request) => Incoming::Request { id: f.id, request },
                    Err(e) => {
                        let status = if matches!(e, DecodeError::UnknownCode(_)) {
                            Status::Unsupported
                        } else {
                            Status::BadRequest
                        };
                        let refusal = Answer::Err {
                            status,
                            reason: e.to_string(),
                        };
                        match self.answer(f.code, f.id, &refusal) {
                            Some(bytes) => Incoming::Reply(bytes),
                            None => Incoming::Ignore,
                        }
                    }
                }
            }
        }
    }

    fn reply(&self, code: u8, id: u16, answer: &Answer) -> Option<Vec<u8>> {
        Frame {
            code: code | RESPONSE_BIT,
            id,
            payload: answer.encode(),
        }
        .encode()
        .ok()
    }

    /// Frames the answer to request `id` with `code` and caches it for repeats.
    /// `None` only if the answer is over the frame limit (a recorder bug).
    pub fn answer(&mut self, code: u8, id: u16, answer: &Answer) -> Option<Vec<u8>> {
        let bytes = self.reply(code, id, answer)?;
        self.last = Some((code, id, bytes.clone()));
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Decoder;
    use crate::message::Response;

    fn decode(bytes: &[u8]) -> Decoded {
        let mut d = Decoder::new();
        d.push(bytes);
        d.decode().unwrap()
    }

    fn serve(responder: &mut Responder, bytes: &[u8], answer: &Answer) -> Vec<u8> {
        match responder.on_decoded(decode(bytes)) {
            Incoming::Request { id, request } => {
                responder.answer(request.code(), id, answer).unwrap()
            }
            Incoming::Reply(b) => b,
            Incoming::Ignore => panic!("ignored a request"),
        }
    }

    #[test]
    fn an_answer_is_matched_to_its_request() {
        let now = Instant::now();
        let mut host = Requester::new(Duration::from_secs(1), 3);
        let mut rec = Responder::new();
        let sent = host.start(&Request::GetTime, now).unwrap();
        let answer = Answer::Ok(Response::Time {
            clock: crate::wire::parse_time("20261123083000").unwrap(),
            millis: 5,
        });
        let reply = serve(&mut rec, &sent, &answer);
        assert_eq!(host.on_decoded(decode(&reply), now), Step::Answered(answer));
        assert_eq!(host.deadline(), None);
    }

    #[test]
    fn a_repeated_request_is_answered_from_the_cache_without_being_handled_again() {
        let now = Instant::now();
        let mut host = Requester::new(Duration::from_millis(10), 3);
        let mut rec = Responder::new();
        let req = Request::DeleteFile {
            index: 1,
            size: 10,
            name: "a.mp4".into(),
        };
        let sent = host.start(&req, now).unwrap();
        let first = serve(&mut rec, &sent, &Answer::Ok(Response::Done));
        // The answer is lost; the host times out and sends the same bytes.
        let later = now + Duration::from_millis(11);
        let Step::Send(again) = host.on_timeout(later) else {
            panic!("no retry")
        };
        assert_eq!(again, sent, "a retry keeps the request id");
        assert_eq!(
            rec.on_decoded(decode(&again)),
            Incoming::Reply(first.clone())
        );
        assert_eq!(
            host.on_decoded(decode(&first), later),
            Step::Answered(Answer::Ok(Response::Done))
        );
        assert_eq!(host.retries(), 1);
    }

    #[test]
    fn damaged_frames_either_way_lead_to_a_resend_and_then_to_failure() {
        let now = Instant::now();
        let mut host = Requester::new(Duration::from_secs(1), 2);
        let mut rec = Responder::new();
        let sent = host.start(&Request::Identify, now).unwrap();
        // The recorder got a damaged request and says so.
        let Incoming::Reply(nak) = rec.on_decoded(Decoded::Damaged {
            code: crate::message::code::IDENTIFY,
            id: 1,
        }) else {
            panic!("no NAK")
        };
        assert_eq!(host.on_decoded(decode(&nak), now), Step::Send(sent));
        // Then the answer arrives damaged, and the attempts are spent.
        let step = host.on_decoded(
            Decoded::Damaged {
                code: crate::message::code::IDENTIFY | RESPONSE_BIT,
                id: 1,
            },
            now,
        );
        let Step::Failed(e) = step else {
            panic!("expected failure, got {step:?}")
        };
        assert_eq!(
            e.to_string(),
            "no answer to command 0x04 after 2 attempts of 1s each"
        );
    }

    #[test]
    fn late_answers_to_earlier_requests_are_ignored() {
        let now = Instant::now();
        let mut host = Requester::new(Duration::from_secs(1), 3);
        let mut rec = Responder::new();
        let first = host.start(&Request::GetTime, now).unwrap();
        let late = serve(
            &mut rec,
            &first,
            &Answer::Ok(Response::Time {
                clock: crate::wire::parse_time("20261123083000").unwrap(),
                millis: 0,
            }),
        );
        host.start(&Request::ReadBattery, now).unwrap();
        assert_eq!(host.on_decoded(decode(&late), now), Step::Wait);
    }

    #[test]
    fn an_undecodable_request_is_refused_with_the_reason() {
        let mut rec = Responder::new();
        let bytes = Frame {
            code: 0x42,
            id: 9,
            payload: vec![],
        }
        .encode()
        .unwrap();
        let Incoming::Reply(reply) = rec.on_decoded(decode(&bytes)) else {
            panic!("no refusal")
        };
        let Decoded::Frame(f) = decode(&reply) else {
            panic!()
        };
        assert_eq!(
            Answer::decode(f.code, &f.payload).unwrap(),
            Answer::Err {
                status: Status::Unsupported,
                reason: "unknown command code 0x42".into()
            }
        );
    }
}
