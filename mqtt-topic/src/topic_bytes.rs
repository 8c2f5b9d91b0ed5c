//! The part `TopicName` and `TopicFilter` share: a validated `Bytes` buffer with its
//! constructors, accessors and conversions, written once by [`topic_bytes_type!`].

/// Implements the shared surface of a validated topic type `$ty(Bytes)` whose validator is
/// `$validate(&[u8], &TopicLimits) -> Result<(), TopicError>`; `$what` names it in the docs.
macro_rules! topic_bytes_type {
    ($ty:ident, $validate:path, $what:literal) => {
        impl $ty {
            /// Validates bytes the codec already received, under the protocol limits.
            pub fn new(bytes: Bytes) -> Result<Self, TopicError> {
                Self::with_limits(bytes, &TopicLimits::PROTOCOL)
            }

            /// Validates bytes under the broker's `limits`.
            pub fn with_limits(bytes: Bytes, limits: &TopicLimits) -> Result<Self, TopicError> {
                $validate(&bytes, limits)?;
                Ok(Self(bytes))
            }

            #[doc = concat!("Validates a static ", $what, " without copying it.")]
            pub fn from_static(text: &'static str) -> Result<Self, TopicError> {
                Self::new(Bytes::from_static(text.as_bytes()))
            }

            /// The raw bytes (valid UTF-8).
            #[must_use]
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            #[doc = concat!("The ", $what, " as a string slice.")]
            #[must_use]
            pub fn as_str(&self) -> &str {
                // Validated as UTF-8 at construction, so this never falls back.
                std::str::from_utf8(&self.0).unwrap_or_default()
            }

            /// The underlying buffer (a cheap clone).
            #[must_use]
            pub fn to_bytes(&self) -> Bytes {
                self.0.clone()
            }

            #[doc = concat!("Consumes the ", $what, " and returns its buffer.")]
            #[must_use]
            pub fn into_bytes(self) -> Bytes {
                self.0
            }

            /// The levels, split at `/`; empty levels are kept.
            pub fn levels(&self) -> impl Iterator<Item = &[u8]> {
                self.0.split(|b| *b == b'/')
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = TopicError;

            fn try_from(text: &str) -> Result<Self, TopicError> {
                Self::new(Bytes::copy_from_slice(text.as_bytes()))
            }
        }

        impl TryFrom<String> for $ty {
            type Error = TopicError;

            fn try_from(text: String) -> Result<Self, TopicError> {
                Self::new(Bytes::from(text))
            }
        }

        impl TryFrom<Bytes> for $ty {
            type Error = TopicError;

            fn try_from(bytes: Bytes) -> Result<Self, TopicError> {
                Self::new(bytes)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = TopicError;

            fn from_str(text: &str) -> Result<Self, TopicError> {
                Self::try_from(text)
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($ty), "({:?})"), self.as_str())
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<[u8]> for $ty {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
    };
}

pub(crate) use topic_bytes_type;
