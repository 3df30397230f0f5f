from setuptools import find_packages, setup

VERSION = "0.1.0"

requires = [
    "pyramid>=2.0",
    "pyramid_tm",
    "pyramid_retry",
    "pyramid_jinja2",
    "pyramid_mailer",
    "SQLAlchemy>=2.0",
    "zope.sqlalchemy",
    "transaction",
    "colander>=2.0",
    "waitress",
    "alembic",
    "argon2-cffi",
    "requests",
    "PyYAML",
    "tzdata",
    "cronsim>=2.6",
]

setup(
    name="jobrunner",
    version=VERSION,
    description="A crontab with a web front end: recurring jobs on many machines",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    # The migrations live in alembic/ at the top of the repository and are
    # installed as jobrunner/alembic, so `jobrunner-admin init-db` works from
    # an installed package too.
    packages=find_packages(exclude=["tests", "tests.*", "bench", "bench.*"])
    + ["jobrunner.alembic", "jobrunner.alembic.versions"],
    package_dir={"jobrunner.alembic": "alembic", "jobrunner.alembic.versions": "alembic/versions"},
    package_data={
        "jobrunner": [
            "templates/*.jinja2",
            "static/*",
            "dashboard/templates/*.jinja2",
            "*.yaml",
        ],
        "jobrunner.alembic": ["*.py", "*.mako"],
        "jobrunner.alembic.versions": ["*.py"],
    },
    zip_safe=False,
    python_requires=">=3.11",
    install_requires=requires,
    extras_require={
        "postgresql": ["psycopg[binary]>=3.1"],
        "test": [
            "psycopg[binary]>=3.1",
            "pytest",
            "pytest-xdist",
            "WebTest",
            "hypothesis",
            "aiosmtpd",
            "playwright",
        ],
    },
    entry_points={
        "paste.app_factory": ["main = jobrunner:main"],
        "console_scripts": [
            "jobrunner-admin = jobrunner.admin:main",
            "jobrunner-scheduler = jobrunner.scheduling.daemon:main",
            "jobrunner-worker = jobrunner.worker.daemon:main",
        ],
    },
)
