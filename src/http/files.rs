//! Static files from `www/`, on the same port as the WebSocket.
//!
//! Only regular files inside the root can be served. The request path is
//! percent-decoded strictly, and a path with `..` or `.` segments, a
//! backslash, a NUL, or an encoded slash is refused before the file system
//! is asked; the file found is then canonicalized (resolving symlinks) and
//! must still lie under the canonical root.

use std::path::{Path, PathBuf};

use super::{HEALTH_PATH, HttpError, Request, health, response};

#[derive(Clone, Debug)]
pub struct StaticFiles {
    /// Canonical root; `None` when the directory does not exist.
    root: Option<PathBuf>,
    /// Largest file served, to keep a response in memory bounded.
    max_size: u64,
}

impl StaticFiles {
    pub fn new(root: &Path) -> StaticFiles {
        StaticFiles {
            root: root.canonicalize().ok(),
            max_size: 16 * 1024 * 1024,
        }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Answer a GET or HEAD for a file.
    pub fn respond(&self, request: &Request) -> Result<Vec<u8>, HttpError> {
        let head_only = match request.method.as_str() {
            "GET" => false,
            "HEAD" => true,
            _ => return Err(HttpError::MethodNotAllowed),
        };
        let path = request.path.split(['?', '#']).next().unwrap_or("");
        if path == HEALTH_PATH {
            return Ok(health(head_only));
        }
        let relative = safe_relative_path(path)?;
        let root = self.root.as_ref().ok_or(HttpError::NotFound)?;
        let file = root.join(if relative.as_os_str().is_empty() {
            Path::new("index.html")
        } else {
            &relative
        });
        let file = file.canonicalize().map_err(|_| HttpError::NotFound)?;
        if !file.starts_with(root) {
            return Err(HttpError::NotFound);
        }
        let meta = std::fs::metadata(&file).map_err(|_| HttpError::NotFound)?;
        if !meta.is_file() || meta.len() > self.max_size {
            return Err(HttpError::NotFound);
        }
        let body = std::fs::read(&file).map_err(|_| HttpError::NotFound)?;
        Ok(response(200, "OK", content_type(&file), &body, head_only))
    }
}

/// Turn a request path into a relative path with only normal segments.
pub fn safe_relative_path(path: &str) -> Result<PathBuf, HttpError> {
    let Some(path) = path.strip_prefix('/') else {
        return Err(HttpError::BadRequest("path must start with /"));
    };
    let mut out = PathBuf::new();
    for segment in path.split('/') {
        let decoded =
            percent_decode(segment).ok_or(HttpError::BadRequest("bad percent-encoding in path"))?;
        if decoded.contains(['/', '\\', '\0']) || decoded.chars().any(char::is_control) {
            return Err(HttpError::BadRequest("forbidden character in path"));
        }
        match decoded.as_str() {
            "" => continue,
            "." | ".." => {
                return Err(HttpError::BadRequest(
                    "dot segments are not allowed in paths",
                ));
            }
            name if name.starts_with('.') => return Err(HttpError::NotFound),
            name => out.push(name),
        }
    }
    Ok(out)
}

/// Strict percent-decoding: every `%` is followed by two hex digits, and the
/// result is UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "jpg" | "jpeg" => "image/jpeg",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths() {
        assert_eq!(safe_relative_path("/").unwrap(), PathBuf::new());
        assert_eq!(
            safe_relative_path("/index.html").unwrap(),
            PathBuf::from("index.html")
        );
        assert_eq!(
            safe_relative_path("/a%20b/c.css").unwrap(),
            PathBuf::from("a b/c.css")
        );
    }

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a%2fb",
            "/a%5c..%5cb",
            "/a\\b",
            "/x%00.html",
            "/%zz",
            "/./index.html",
            "etc/passwd",
        ] {
            assert!(safe_relative_path(bad).is_err(), "{bad}");
        }
    }
}
