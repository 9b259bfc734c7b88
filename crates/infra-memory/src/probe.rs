use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::Probe;

/// The readiness probe of an in-process adapter: it is there as long as the process is.
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemoryProbe;

#[async_trait]
impl Probe for InMemoryProbe {
    async fn ping(&self) -> Result<(), PortError> {
        Ok(())
    }
}
