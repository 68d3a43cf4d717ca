//! Every operation of the document, for the passes that change them all
//! (`openapi.rs`'s shared responses, `links.rs`'s links): its own file, so
//! neither of those imports the other.

use utoipa::openapi::path::Operation;
use utoipa::openapi::OpenApi;

/// Every operation of the document, to change.
pub(super) fn operations_mut(doc: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}
