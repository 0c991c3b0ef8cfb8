//! One study's panic stays with that study: its analysis runs as a task of
//! its own, and a panic comes back as an error the job fails with, while
//! the worker goes on to the next job.

use std::future::Future;

/// Run `task` on its own tokio task; a panic in it is returned as an error
/// carrying the panic's message.
pub(crate) async fn guarded<T: Send + 'static>(
    task: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    match tokio::spawn(task).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => Err(format!("panicked: {}", message(e.into_panic()))),
        Err(e) => Err(e.to_string()),
    }
}

fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::guarded;

    #[tokio::test]
    async fn a_panic_becomes_an_error_and_the_caller_goes_on() {
        let e = guarded(async { panic!("decoder fell over on {}", 7) })
            .await
            .unwrap_err();
        assert_eq!(e, "panicked: decoder fell over on 7");
        let e = guarded(async { std::panic::panic_any(42u8) })
            .await
            .unwrap_err();
        assert_eq!(e, "panicked: (no message)");
        assert_eq!(guarded(async { 5 }).await, Ok(5));
    }
}
