"""The data model: every table, its columns and indexes."""
from __future__ import annotations

import enum
from datetime import datetime, time

from sqlalchemy import (
    Boolean,
    Column,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, UTCDateTime, metadata


def _link(name, left, right):
    return Table(
        name,
        metadata,
        Column(f"{left}_id", ForeignKey(f"{left}.id", ondelete="CASCADE"), primary_key=True),
        Column(f"{right}_id", ForeignKey(f"{right}.id", ondelete="CASCADE"), primary_key=True),
        # The reverse lookups (which projects does this group see?) need it.
        Index(f"ix_{name}_{right}_id", f"{right}_id"),
    )


user_groups = _link("user_group", "user", "group")
project_groups = _link("project_group", "project", "group")
project_auth_groups = _link("project_auth_group", "project", "group")
project_worker_pools = _link("project_worker_pool", "project", "worker_pool")
worker_pool_workers = _link("worker_pool_worker", "worker_pool", "worker")


class IntervalType(str, enum.Enum):
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


class Group(Base):
    __tablename__ = "group"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    groups: Mapped[list[Group]] = relationship(secondary=user_groups, order_by=Group.id)


class Project(Base):
    __tablename__ = "project"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    notification_addresses: Mapped[str] = mapped_column(Text, default="")
    webhook_urls: Mapped[str] = mapped_column(Text, default="", server_default="")
    enqueue_is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    groups: Mapped[list[Group]] = relationship(secondary=project_groups, order_by=Group.id)
    auth_groups: Mapped[list[Group]] = relationship(
        secondary=project_auth_groups, order_by=Group.id
    )
    worker_pools: Mapped[list["WorkerPool"]] = relationship(
        secondary=project_worker_pools, order_by="WorkerPool.id", back_populates="projects"
    )
    job_templates: Mapped[list["JobTemplate"]] = relationship(back_populates="project")


class Worker(Base):
    __tablename__ = "worker"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    api_key: Mapped[str] = mapped_column(String(255), unique=True)
    secret: Mapped[str] = mapped_column(String(255))
    enqueue_is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    ping_response_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_version: Mapped[str] = mapped_column(String(255), default="")
    concurrent_jobs: Mapped[int] = mapped_column(Integer, default=4)
    pools: Mapped[list["WorkerPool"]] = relationship(
        secondary=worker_pool_workers, back_populates="workers", order_by="WorkerPool.id"
    )


class WorkerPool(Base):
    __tablename__ = "worker_pool"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    notification_addresses: Mapped[str] = mapped_column(Text, default="")
    webhook_urls: Mapped[str] = mapped_column(Text, default="", server_default="")
    enqueue_is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set when the "unresponsive" mail went out; cleared when a worker answers
    # again, so an outage is reported once.
    unresponsive_since_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    workers: Mapped[list[Worker]] = relationship(
        secondary=worker_pool_workers, back_populates="pools", order_by=Worker.id
    )
    projects: Mapped[list[Project]] = relationship(
        secondary=project_worker_pools, back_populates="worker_pools", order_by=Project.id
    )


class JobTemplate(Base):
    __tablename__ = "job_template"
    __table_args__ = (UniqueConstraint("project_id", "title"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    notification_addresses: Mapped[str] = mapped_column(Text, default="")
    webhook_urls: Mapped[str] = mapped_column(Text, default="", server_default="")
    enqueue_is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    project: Mapped[Project] = relationship(back_populates="job_templates")
    jobs: Mapped[list["Job"]] = relationship(back_populates="job_template")


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (UniqueConstraint("job_template_id", "title"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    job_template_id: Mapped[int] = mapped_column(
        ForeignKey("job_template.id", ondelete="CASCADE"), index=True
    )
    worker_pool_id: Mapped[int] = mapped_column(ForeignKey("worker_pool.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("job.id", ondelete="SET NULL"), index=True
    )
    script_content_partial: Mapped[str] = mapped_column(Text, default="")
    script_content: Mapped[str] = mapped_column(Text, default="")
    enqueue_is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    reschedule_interval: Mapped[int | None] = mapped_column(Integer)
    reschedule_interval_type: Mapped[IntervalType | None] = mapped_column(
        Enum(IntervalType, native_enum=False, length=10, create_constraint=False)
    )
    notification_addresses: Mapped[str] = mapped_column(Text, default="")
    webhook_urls: Mapped[str] = mapped_column(Text, default="", server_default="")
    run_on_all_workers: Mapped[bool] = mapped_column(Boolean, default=False)
    schedule_children_on_error: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_on_success: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    fail_times: Mapped[int] = mapped_column(Integer, default=0)
    disable_enqueue_after_fails: Mapped[int | None] = mapped_column(Integer)
    last_completed_schedule_id: Mapped[int | None] = mapped_column(Integer)
    # Schedules: a cron expression instead of an interval, the job's own time
    # zone (null: the global setting), overlap, timeout, retries, misfires.
    # Server defaults keep rows and writers that know nothing of them valid.
    cron_expression: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(Text)
    concurrency_policy: Mapped[str] = mapped_column(Text, default="forbid", server_default="forbid")
    timeout: Mapped[int | None] = mapped_column(Integer)  # seconds
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_delay: Mapped[int] = mapped_column(Integer, default=60, server_default="60")  # seconds
    misfire_policy: Mapped[str] = mapped_column(Text, default="skip", server_default="skip")

    job_template: Mapped[JobTemplate] = relationship(back_populates="jobs")
    worker_pool: Mapped[WorkerPool] = relationship()
    parent: Mapped["Job | None"] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list["Job"]] = relationship(back_populates="parent", order_by="Job.id")
    reschedule_excludes: Mapped[list["RescheduleExclude"]] = relationship(
        back_populates="job",
        cascade="all, delete-orphan",
        order_by="RescheduleExclude.id",
    )

    def render_script(self) -> str:
        body = self.job_template.body if self.job_template else ""
        if "{{ content }}" in body:
            return body.replace("{{ content }}", self.script_content_partial or "")
        return body + (self.script_content_partial or "")


class RescheduleExclude(Base):
    __tablename__ = "reschedule_exclude"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    note: Mapped[str] = mapped_column(String(255), default="")
    job: Mapped[Job] = relationship(back_populates="reschedule_excludes")


class Run(Base):
    __tablename__ = "run"
    __table_args__ = (
        # The runs that are not finished are few whatever the history holds:
        # partial indexes keep the scheduler's and the workers' queries small.
        Index(
            "ix_run_pending",
            "schedule_dts",
            "id",
            postgresql_where=text("return_dts IS NULL"),
            sqlite_where=text("return_dts IS NULL"),
        ),
        Index(
            "ix_run_active_job",
            "job_id",
            postgresql_where=text("return_dts IS NULL"),
            sqlite_where=text("return_dts IS NULL"),
        ),
        Index("ix_run_job_id_schedule_dts", "job_id", "schedule_dts"),
        Index("ix_run_schedule_id", "schedule_id"),
        Index("ix_run_worker_id", "worker_id"),
        Index("ix_run_return_dts", "return_dts"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id", ondelete="SET NULL"))
    schedule_dts: Mapped[datetime] = mapped_column(UTCDateTime)
    enqueue_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    start_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    return_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    return_success: Mapped[bool | None] = mapped_column(Boolean)
    pid: Mapped[int | None] = mapped_column(Integer)
    is_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    schedule_children: Mapped[bool] = mapped_column(Boolean, default=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # 1: a first try
    timed_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    job: Mapped[Job] = relationship()
    worker: Mapped[Worker | None] = relationship()
    run_log: Mapped["RunLog | None"] = relationship(
        back_populates="run", uselist=False, cascade="all, delete-orphan"
    )
    kill_requests: Mapped[list["KillRequest"]] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )


class KillRequest(Base):
    __tablename__ = "kill_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    schedule_dts: Mapped[datetime] = mapped_column(UTCDateTime)
    enqueue_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    execute_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    run: Mapped[Run] = relationship(back_populates="kill_requests")


class RunLog(Base):
    __tablename__ = "run_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("run.id", ondelete="CASCADE"), unique=True
    )
    content: Mapped[str] = mapped_column(Text, default="")
    run: Mapped[Run] = relationship(back_populates="run_log")
