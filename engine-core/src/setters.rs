//! The chained setters of the option structs (see the crate docs, "Building
//! option structs").

/// `setters!(Type { field: FieldType, ... })`: one `pub fn field(self, value:
/// FieldType) -> Self` per field, documented with the field's name.
macro_rules! setters {
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
pub(crate) use setters;
