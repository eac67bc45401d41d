//! The chained setters of the option structs (see the crate docs, "Building
//! option structs").

/// `__setters!(Type { field: FieldType, ... })`: one `pub fn field(self,
/// value: FieldType) -> Self` per field, documented with the field's name.
/// The engine's crates use it for their own option structs; not part of the
/// public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __setters {
    ($ty:ident { $($field:ident: $t:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets the `", stringify!($field), "` field.")]
                #[must_use]
                pub fn $field(mut self, value: $t) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}
pub(crate) use crate::__setters as setters;
