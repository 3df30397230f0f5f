from setuptools import find_packages, setup

VERSION = "0.1.0"

requires = [
    "pyramid>=2.0",
    "pyramid_tm",
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
]

setup(
    name="jobrunner",
    version=VERSION,
    description="A crontab with a web front end: recurring jobs on many machines",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(exclude=["tests", "tests.*"]),
    include_package_data=True,
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
