//! The deploy pass of one row: observe Fly, ask `plan` for the next step, perform it, update
//! the picture and ask again, until the preview is ready, must wait, or cannot run.

use chrono::Utc;
use uuid::Uuid;

use crate::fly::{CreateMachineRequest, FlyError, IpType, WaitOutcome};
use crate::model::state::{Reason, Status};
use crate::model::{MachineState, naming, validate};
use crate::preview::ctx::Ctx;
use crate::preview::env::{self, Delivery};
use crate::preview::error::{ReconcileError, Rejection};
use crate::preview::machine_config::{self, LAUNCH_MARKER_KEY, PREVIEW_ID_KEY, PreviewSpec};
use crate::preview::observe;
use crate::preview::outcome::Outcome;
use crate::preview::plan::{self, Desired, MachineRef, MachineSeen, Observed, Step};
use crate::store::{Lease, PreviewRow, StatusWrite};

/// Upper bound on steps in one pass (a pass normally needs at most 7).
const MAX_STEPS: usize = 16;

pub(crate) struct Deploy<'a> {
    pub ctx: &'a Ctx,
    pub row: &'a PreviewRow,
    /// The row already shows `initializing` for this pass.
    pub marked: bool,
}

impl Deploy<'_> {
    fn app(&self) -> &str {
        &self.row.fly_app_name
    }

    fn desired(&self) -> Desired {
        let r = self.row;
        let since = r.requested_at.max(r.last_transition_at);
        let deadline = self.ctx.settings.init_deadline;
        Desired {
            preview_id: self.row.id,
            generation: self.row.generation,
            was_running: self.row.status == Status::Running
                && self.row.observed_generation == self.row.generation,
            deadline_passed: plan::deadline_passed(since, deadline, Utc::now()),
            restart_on_save: self.row.status_reason == Some(Reason::RestartOnSave),
        }
    }

    async fn observe(&self) -> Result<Observed, ReconcileError> {
        let r = self.row;
        if !r.fly_app_created || (r.observed_generation == 0 && r.fly_machine_id.is_none()) {
            // Never had an app (never deployed, refused, invalid): assume nothing exists yet
            // and let create-app find out (a taken name answers 422 and is then observed
            // fully). Saves the observing calls on a first deploy.
            return Ok(Observed::missing());
        }
        let known = r.status == Status::Initializing && r.observed_generation == r.generation;
        if let (true, Some(id)) = (known, r.fly_machine_id.as_deref())
            && let Some(seen) = observe::fast(&self.ctx.fly, self.app(), id, r.id).await?
        {
            return Ok(seen);
        }
        Ok(observe::full(&self.ctx.fly, self.app(), r.id).await?)
    }

    pub async fn run(mut self) -> Result<Outcome, ReconcileError> {
        // Written ahead of any call that can create the app, so a row without the mark
        // provably never had one.
        if !self.row.fly_app_created && !self.ctx.store.note_app_created(self.row.id).await? {
            return Err(ReconcileError::Fenced);
        }
        let want = self.desired();
        let mut seen = self.observe().await?;
        for _ in 0..MAX_STEPS {
            let step = plan::plan(&want, &seen);
            tracing::debug!(?step, "step");
            if let Some(outcome) = self.act(step, &mut seen).await? {
                return Ok(outcome);
            }
        }
        Ok(self.progressing(Reason::WaitingForMachine, &seen))
    }

    fn progressing(&self, reason: Reason, seen: &Observed) -> Outcome {
        let machine = seen.machines.iter().find(|m| m.ours).map(MachineRef::of);
        Outcome::Progressing { reason, machine, retry_in: self.ctx.settings.health_poll }
    }

    /// The pass that just asked Fly to boot a machine ends here.
    fn booting(&self, seen: &Observed) -> Outcome {
        let machine = seen.machines.iter().find(|m| m.ours).map(MachineRef::of);
        Outcome::Progressing {
            reason: Reason::WaitingForMachine,
            machine,
            retry_in: self.ctx.settings.boot_estimate,
        }
    }

    /// Shows `initializing` before the first change on Fly, so the web app sees progress.
    async fn mark(&mut self, machine: Option<&MachineSeen>) -> Result<(), ReconcileError> {
        if self.marked {
            return Ok(());
        }
        let r = self.row;
        let w = StatusWrite {
            status: Status::Initializing,
            reason: Reason::Deploying,
            error_message: None,
            detail: None,
            preview_url: None,
            fly_machine_id: machine.map(|m| m.id.clone()).or_else(|| r.fly_machine_id.clone()),
            machine_state: machine.map(|m| m.state.clone()),
            observed_generation: None,
            attempts: r.attempts,
            next_attempt_at: Some(Utc::now()),
        };
        self.ctx
            .store
            .write_status(r.id, r.generation, &w, Lease::Keep)
            .await?
            .ok_or(ReconcileError::Fenced)?;
        self.marked = true;
        Ok(())
    }

    /// Performs one step. `Some(outcome)` ends the pass.
    async fn act(
        &mut self,
        step: Step,
        seen: &mut Observed,
    ) -> Result<Option<Outcome>, ReconcileError> {
        let fly = &self.ctx.fly;
        let app = self.row.fly_app_name.clone();
        match step {
            Step::CreateApp => {
                self.mark(None).await?;
                *seen = self.create_app().await?;
            }
            Step::AllocateV6 => {
                fly.assign_ip(&app, IpType::V6).await?;
                seen.has_v6 = true;
            }
            Step::AllocateSharedV4 => {
                fly.assign_ip(&app, IpType::SharedV4).await?;
                seen.has_shared_v4 = true;
            }
            Step::DestroyMachine { id } => {
                tracing::info!(machine = %id, "destroying a machine that should not be there");
                match fly.destroy_machine(&app, &id, true).await {
                    Ok(()) | Err(FlyError::NotFound(_)) => seen.machines.retain(|m| m.id != id),
                    Err(e) => return Err(e.into()),
                }
            }
            // After create/update/start the pass ends: no worker slot is held while Fly boots
            // the machine; the row is looked at again when it can be expected to be up.
            Step::CreateMachine => {
                self.mark(None).await?;
                let delivery = self.deliver_env().await?;
                let m = self.create_machine(&delivery).await?;
                seen.machines.push(m);
                return Ok(Some(self.booting(seen)));
            }
            Step::UpdateMachine { id } => {
                self.mark(None).await?;
                let delivery = self.deliver_env().await?;
                let req = self.request(&Uuid::new_v4().to_string(), &delivery);
                let m = fly.update_machine(&app, &id, &req).await?;
                replace(seen, MachineSeen::from_machine(&m, self.row.id));
                return Ok(Some(self.booting(seen)));
            }
            Step::StartMachine { id } => {
                self.mark(None).await?;
                fly.start_machine(&app, &id).await?;
                if let Some(m) = seen.machines.iter_mut().find(|m| m.id == id) {
                    m.state = MachineState::Starting;
                }
                return Ok(Some(self.booting(seen)));
            }
            Step::WaitStarted { id, instance_id } => {
                return self.wait_started(&id, instance_id, seen).await;
            }
            Step::WaitHealthy { .. } => {
                return Ok(Some(self.progressing(Reason::WaitingForHealthCheck, seen)));
            }
            Step::Requeue { .. } => {
                return Ok(Some(self.progressing(Reason::WaitingForMachine, seen)));
            }
            Step::Ready { id, state } => {
                return Ok(Some(Outcome::Running { machine: MachineRef { id, state } }));
            }
            Step::Fail(f) => {
                let machine = seen.machines.iter().find(|m| m.ours).map(MachineRef::of);
                return Err(ReconcileError::Rejected(Rejection {
                    reason: plan::failure_reason(&f),
                    message: plan::failure_message(&f, &app),
                    detail: plan::failure_detail(&f, &app),
                    machine,
                }));
            }
        }
        Ok(None)
    }

    /// Creates the app; a taken name is ours only if our token can see it (GET 200).
    async fn create_app(&self) -> Result<Observed, ReconcileError> {
        let fly = &self.ctx.fly;
        let net = naming::network_name(self.app());
        match fly.create_app_in_network(self.app(), &self.ctx.settings.org, Some(&net)).await {
            Ok(_) => Ok(Observed::fresh_app()),
            Err(FlyError::NameTaken(_)) => {
                let seen = observe::full(fly, self.app(), self.row.id).await?;
                if seen.app == plan::AppSeen::Missing {
                    return Err(ReconcileError::NotVisibleYet(
                        "app name taken but the app is not visible yet",
                    ));
                }
                Ok(seen)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The row's variables for the machine about to boot; the app may hold secrets of an
    /// earlier deploy once the row was ever acted on.
    async fn deliver_env(&self) -> Result<Delivery, ReconcileError> {
        let r = self.row;
        let may_have_secrets = r.observed_generation > 0 || r.fly_machine_id.is_some();
        env::deliver(self.ctx, r, may_have_secrets).await
    }

    fn request(&self, marker: &str, delivery: &Delivery) -> CreateMachineRequest {
        let r = self.row;
        let url = validate::normalize_repo_url(r.github_repo_url.as_deref().unwrap_or_default());
        let spec = PreviewSpec {
            preview_id: r.id,
            generation: r.generation,
            repo_url: &url,
            branch: r.github_branch.as_deref().unwrap_or("main"),
            root_directory: r.root_directory.as_deref().filter(|d| !d.is_empty()),
            launch_marker: marker,
        };
        let mut config = machine_config::build(&self.ctx.settings.runner, &spec);
        delivery.merge_into(&mut config);
        CreateMachineRequest {
            name: None,
            region: self.ctx.settings.region.clone(),
            config,
            skip_launch: None,
            current_version: None,
            min_secrets_version: delivery.min_secrets_version,
        }
    }

    /// Creates the machine with a fresh launch marker. An ambiguous answer (408/5xx/lost
    /// connection) is resolved by listing our machines and adopting the one with the marker;
    /// nothing is retried blindly.
    async fn create_machine(&self, delivery: &Delivery) -> Result<MachineSeen, ReconcileError> {
        let marker = Uuid::new_v4().to_string();
        let fly = &self.ctx.fly;
        match fly.create_machine(self.app(), &self.request(&marker, delivery)).await {
            Ok(m) => Ok(MachineSeen::from_machine(&m, self.row.id)),
            Err(FlyError::AmbiguousCreate(info)) => {
                tracing::warn!(error = %info, "ambiguous create; looking for our launch marker");
                let id = self.row.id.to_string();
                let listed =
                    fly.list_machines(self.app(), &[(PREVIEW_ID_KEY, id.as_str())]).await?;
                let found = listed.iter().find(|m| {
                    m.metadata()
                        .and_then(|md| md.get(LAUNCH_MARKER_KEY))
                        .is_some_and(|v| *v == marker)
                });
                match found {
                    Some(m) => Ok(MachineSeen::from_machine(m, self.row.id)),
                    None => Err(ReconcileError::NotVisibleYet(
                        "machine create was ambiguous and no machine carries our marker yet",
                    )),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn wait_started(
        &self,
        id: &str,
        instance_id: Option<String>,
        seen: &mut Observed,
    ) -> Result<Option<Outcome>, ReconcileError> {
        let slice = self.ctx.settings.wait_slice;
        match self
            .ctx
            .fly
            .wait_machine(self.app(), id, &MachineState::Started, instance_id.as_deref(), slice)
            .await?
        {
            WaitOutcome::Reached { state } => {
                if let Some(m) = seen.machines.iter_mut().find(|m| m.id == id) {
                    m.state = state;
                    m.checks_passing = false;
                }
                Ok(Some(self.progressing(Reason::WaitingForHealthCheck, seen)))
            }
            WaitOutcome::TimedOut => Ok(Some(self.progressing(Reason::WaitingForMachine, seen))),
        }
    }
}

fn replace(seen: &mut Observed, m: MachineSeen) {
    seen.machines.retain(|x| x.id != m.id);
    seen.machines.push(m);
}

/// The row's spec checked against the rules (pure; no Fly call).
pub fn validate_row(
    row: &PreviewRow,
    rules: &validate::Rules,
) -> Result<(), validate::ValidationError> {
    let user_id = row.user_id.to_string();
    let spec = validate::Spec {
        user_id: &user_id,
        project_id: &row.project_id,
        fly_app_name: &row.fly_app_name,
        repo_url: row.github_repo_url.as_deref(),
        branch: row.github_branch.as_deref(),
        root_directory: row.root_directory.as_deref(),
    };
    validate::validate(&spec, rules)
}
