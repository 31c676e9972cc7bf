//! The blob store interface on the local folder (the bucket's side is
//! tested against an S3-protocol server in `tests/tests/media_store_s3.rs`).

use super::*;
use crate::media::Partials;

fn sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

fn local(dir: &Path) -> Blobs {
    Blobs::Local(LocalBlobs::open(dir).unwrap())
}

async fn body(r: Response) -> Vec<u8> {
    use http_body_util::BodyExt as _;
    r.into_body().collect().await.unwrap().to_bytes().to_vec()
}

fn get(range: Option<&str>) -> Request {
    let mut b = axum::http::Request::builder().uri("/x");
    if let Some(r) = range {
        b = b.header(header::RANGE, r);
    }
    b.body(Body::empty()).unwrap()
}

#[test]
fn blobs_are_fanned_out_by_hash_and_only_hashes_name_files() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(dir.path()).unwrap();
    let sha = "ab".repeat(32);
    assert_eq!(
        blobs.path(&sha).unwrap(),
        dir.path().join("blobs/ab/ab").join(&sha)
    );
    for bad in ["../../etc/passwd", &"AB".repeat(32), "ab"] {
        assert!(blobs.path(bad).is_err(), "{bad} accepted");
    }
}

#[tokio::test]
async fn a_committed_partial_is_stored_under_its_hash_and_served_in_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = local(dir.path());
    let partials = Partials::open(&dir.path().join("partials")).unwrap();
    let content = b"0123456789abcdef".repeat(100);
    let sha = sha256(&content);
    assert_eq!(blobs.size(&sha).await.unwrap(), None);
    let held = partials.try_take(&sha).unwrap().unwrap();
    std::fs::write(held.path(), &content).unwrap();
    blobs.commit(&sha, held.path()).await.unwrap();
    drop(held);
    assert_eq!(blobs.size(&sha).await.unwrap(), Some(1600));
    assert!(partials.list().unwrap().is_empty(), "the partial is gone");

    let whole = blobs.serve(&sha, get(None)).await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(body(whole).await, content);
    let part = blobs.serve(&sha, get(Some("bytes=10-19"))).await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body(part).await, &content[10..20]);
    let past = blobs.serve(&sha, get(Some("bytes=5000-"))).await.unwrap();
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let missing = blobs.serve(&"cd".repeat(32), get(None)).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[test]
fn only_one_satisfiable_range_is_served() {
    assert_eq!(one_range("bytes=0-9", 100), Some(0..10));
    assert_eq!(one_range("bytes=90-", 100), Some(90..100));
    assert_eq!(one_range("bytes=-10", 100), Some(90..100));
    assert_eq!(one_range("bytes=95-200", 100), Some(95..100));
    assert_eq!(one_range("bytes=-500", 100), Some(0..100));
    for refused in [
        "bytes=100-",
        "bytes=5-2",
        "bytes=0-1,5-6",
        "bytes=-0",
        "items=0-1",
        "bytes=x-1",
    ] {
        assert_eq!(one_range(refused, 100), None, "{refused}");
    }
}
