//! What system and process handles share: the event callback registration,
//! the dispatcher that runs callbacks, and completions waiting for a callback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hcs_errors::{HResult, HcsError, HcsResult};

use crate::callback::{lock, Dispatcher, Job};
use crate::event::{Event, EventCallback, EventOptions, EventType};
use crate::operation::Operation;

/// The callback side of one handle.
pub(crate) struct HandleCore {
    dispatcher: Arc<Dispatcher>,
    registration: Mutex<Option<(EventOptions, EventCallback)>>,
    /// Completions of callback-less operations that no event callback has
    /// seen yet. The operation-completion sample registers its event callback
    /// only after HcsCreateComputeSystem returned, and still expects the
    /// create's completion, so these are delivered when one registers.
    undelivered: Mutex<Vec<Operation>>,
    closed: AtomicBool,
    /// The exit event was handed to a callback: it is delivered once only,
    /// whether it arrives live or is replayed at registration.
    exit_delivered: AtomicBool,
}

impl HandleCore {
    pub(crate) fn new() -> Arc<HandleCore> {
        Arc::new(HandleCore {
            dispatcher: Dispatcher::new(),
            registration: Mutex::new(None),
            undelivered: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            exit_delivered: AtomicBool::new(false),
        })
    }

    /// `HcsSet{ComputeSystem,Process}Callback`. One registration per handle.
    pub(crate) fn set_callback(
        &self,
        options: EventOptions,
        callback: EventCallback,
    ) -> HcsResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(HcsError::new(
                HResult::ERROR_INVALID_HANDLE,
                "the handle is closed",
            ));
        }
        {
            let mut reg = lock(&self.registration);
            if reg.is_some() {
                return Err(HcsError::new(
                    HResult::HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET,
                    "an event callback has already been registered on this handle",
                ));
            }
            *reg = Some((options, callback));
        }
        if options.contains(EventOptions::ENABLE_OPERATION_CALLBACKS) {
            let pending = std::mem::take(&mut *lock(&self.undelivered));
            for op in pending {
                if !op.is_observed_or_idle() {
                    self.operation_completed(op);
                }
            }
        } else {
            lock(&self.undelivered).clear();
        }
        Ok(())
    }

    /// True if operation completions go to the event callback.
    pub(crate) fn routes_operation_callbacks(&self) -> bool {
        lock(&self.registration)
            .as_ref()
            .map(|(o, _)| o.contains(EventOptions::ENABLE_OPERATION_CALLBACKS))
            .unwrap_or(false)
    }

    /// Deliver an event to the registered callback, if any.
    pub(crate) fn deliver(&self, event: Event) {
        if event.event_type == EventType::OperationCallback && !self.routes_operation_callbacks() {
            return;
        }
        let cb = lock(&self.registration).as_ref().map(|(_, cb)| cb.clone());
        if let Some(cb) = cb {
            let is_exit = matches!(
                event.event_type,
                EventType::SystemExited | EventType::ProcessExited
            );
            if is_exit && self.exit_delivered.swap(true, Ordering::AcqRel) {
                return;
            }
            self.dispatcher.post(Box::new(move || cb(&event)));
        }
    }

    /// A callback-less operation used with this handle completed.
    pub(crate) fn operation_completed(&self, op: Operation) {
        if self.routes_operation_callbacks() {
            op.mark_observed();
            self.deliver(Event {
                event_type: EventType::OperationCallback,
                data: None,
                operation: Some(op),
            });
            return;
        }
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut und = lock(&self.undelivered);
        und.retain(|o| !o.same(&op) && !o.is_observed_or_idle());
        und.push(op);
    }

    /// Run an operation's own completion callback in this handle's order, or
    /// on the library's shared thread once the handle is closed (the
    /// operation outlives its handle).
    pub(crate) fn post_operation_callback(&self, job: Job) -> bool {
        match self.dispatcher.try_post_surviving(job) {
            Ok(()) => true,
            Err(job) => crate::callback::global().post(job),
        }
    }

    /// Close: no callback of this handle runs after this returns.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.registration).take();
        lock(&self.undelivered).clear();
        self.dispatcher.close();
    }
}
