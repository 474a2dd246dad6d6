//! Typed per-call data that travels with a request through the middleware: the caller's key,
//! cache control, a conversation id — anything a middleware wants to attach without core
//! knowing its type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

trait Entry: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn Entry>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Clone + Send + Sync + 'static> Entry for T {
    fn clone_box(&self) -> Box<dyn Entry> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A map from type to one value of that type (like `http::Extensions`).
///
/// Extensions are not part of what a request *asks*: they are ignored by equality and never
/// serialized, so they change neither cache keys nor stored conversations.
#[derive(Default)]
pub struct Extensions {
    map: HashMap<TypeId, Box<dyn Entry>>,
}

impl Extensions {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a value, returning the previous value of its type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.map
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| {
                let any: Box<dyn Any> = old;
                any.downcast::<T>().ok().map(|b| *b)
            })
    }

    /// The value of type `T`, if any.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|b| (**b).as_any().downcast_ref::<T>())
    }

    /// The value of type `T`, mutably.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.map
            .get_mut(&TypeId::of::<T>())
            .and_then(|b| (**b).as_any_mut().downcast_mut::<T>())
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.map.remove(&TypeId::of::<T>()).and_then(|old| {
            let any: Box<dyn Any> = old;
            any.downcast::<T>().ok().map(|b| *b)
        })
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Clone for Extensions {
    fn clone(&self) -> Self {
        Self {
            map: self
                .map
                .iter()
                .map(|(k, v)| (*k, (**v).clone_box()))
                .collect(),
        }
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.map.len())
            .finish()
    }
}

impl PartialEq for Extensions {
    /// Extensions never make two requests different.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// The key of whoever made the call (a gateway virtual key's id), for the ledger and limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallerKey(pub String);

/// Per-call cache control: `CacheControl { enabled: false }` bypasses every response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheControl {
    /// Whether caches may answer or store this call.
    pub enabled: bool,
}

/// The conversation a call belongs to, for the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationRef(pub String);
