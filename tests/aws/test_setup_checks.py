"""What the aws-spot executor and `autotweak workers` refuse, in one line, before anything is created."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import optuna
import pytest
from mlflow import MlflowClient

from autotweak import optimize
from autotweak.aws import ALLOW_LOOPBACK, AwsAccessError, AwsError, SpotExecutor
from autotweak.exceptions import AutotweakError
from autotweak.testing.services import free_port
from tests.aws.test_spot_executor import aws_section
from tests.engine.test_workers import start_cli

NO_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@pytest.fixture
def no_credentials(aws_stores, monkeypatch, tmp_path):
    """boto3's chain finds nothing: no variables, no shared files, no instance metadata."""
    for key in NO_CREDENTIALS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the credentials it found before


@pytest.fixture
def no_endpoint(aws_stores, monkeypatch):
    """AWS_ENDPOINT_URL names a closed port; one attempt, no retries."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the endpoint it was made with


def one_error_line(args, home) -> str:
    proc = start_cli(args, home.parent)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    return out


def test_workers_list_and_stop_without_credentials_say_how_to_provide_them(home, no_credentials):
    for args in (["workers", "list"], ["workers", "stop", "any"]):
        out = one_error_line(args, home)
        assert "no AWS credentials found" in out and "AWS_PROFILE" in out and "AWS_ACCESS_KEY_ID" in out


def test_workers_list_with_an_unreachable_endpoint_names_it(home, no_endpoint):
    out = one_error_line(["workers", "list"], home)
    assert "cannot reach the AWS endpoint http://127.0.0.1:" in out and "AWS_ENDPOINT_URL" in out


def spot_experiment(make_experiment, aws_stores, name: str, **aws):
    return make_experiment(
        name=name,
        budget={"trials": 1, "wall_time": 20},  # bounded, should the check let it run
        execution={"workers": 2, "aws": aws_section(**aws)},
        storage=aws_stores.storage,
        tracking_uri=aws_stores.tracking_uri,
    )


def assert_nothing_created(aws_stores, name: str) -> None:
    assert name not in optuna.get_all_study_names(aws_stores.storage)
    assert MlflowClient(aws_stores.tracking_uri).get_experiment_by_name(name) is None


def assert_refused_in_one_line(exp, aws_stores, refused: str) -> None:
    """``optimize`` on spot workers raises one line of AwsError matching ``refused``, and creates nothing."""
    with pytest.raises(AwsError, match=refused) as caught:
        optimize(exp, executor=SpotExecutor(2))
    assert len(str(caught.value).splitlines()) == 1
    assert_nothing_created(aws_stores, exp.name)


def test_optimize_without_credentials_is_refused_before_the_study_exists(
    home, aws_stores, make_experiment, no_credentials
):
    exp = spot_experiment(make_experiment, aws_stores, "spot-nocred")
    with pytest.raises(AwsAccessError, match=r"no AWS credentials found .*AWS_PROFILE"):
        optimize(exp, executor=SpotExecutor(2))
    assert_nothing_created(aws_stores, "spot-nocred")


def test_optimize_without_a_region_says_to_give_it_in_the_spec(
    home, aws_stores, make_experiment, monkeypatch
):
    """It said to pass --region, an option of `autotweak workers` that optimize does not have."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))  # no region from a config file
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the region it was made with
    exp = spot_experiment(make_experiment, aws_stores, "spot-noregion", region=None)
    said = (
        "no AWS region is set: give 'execution.aws.region' in the spec, or set AWS_REGION or "
        "AWS_DEFAULT_REGION."
    )
    with pytest.raises(AwsAccessError) as caught:
        optimize(exp, executor=SpotExecutor(2))
    assert str(caught.value) == said
    assert_nothing_created(aws_stores, "spot-noregion")


def test_optimize_with_an_unreachable_endpoint_is_refused_before_the_study_exists(
    home, aws_stores, make_experiment, no_endpoint
):
    exp = spot_experiment(make_experiment, aws_stores, "spot-noendpoint")
    with pytest.raises(AwsAccessError, match=r"cannot reach the AWS endpoint .*AWS_ENDPOINT_URL"):
        optimize(exp, executor=SpotExecutor(2))
    assert_nothing_created(aws_stores, "spot-noendpoint")


@pytest.mark.parametrize(
    ("name", "aws", "refused"),
    [
        (
            "spot-typo",
            {"instance_types": ["g4dn.xlarg"]},
            r"^'execution\.aws\.instance_types' holds an unknown instance type 'g4dn\.xlarg' "
            r"\(no spot price in region us-east-1\); did you mean 'g4dn\.xlarge'",
        ),
        (  # a type of other regions was said to be unknown, with the region's nearest names
            "spot-elsewhere",
            {"region": "ap-southeast-3", "instance_types": ["p3dn.24xlarge"]},
            r"^'execution\.aws\.instance_types' must hold types that region ap-southeast-3 offers, got "
            r"'p3dn\.24xlarge': an instance type of other regions; set 'execution\.aws\.region' to one that "
            r"offers it, or list types of this one \(`aws ec2 describe-instance-type-offerings --region "
            r"ap-southeast-3`\)\.$",
        ),
        (  # EC2 refused each launch after the study was made; the launcher gave up three polls later
            "spot-ami",
            {"image_id": "ami-0123456789abcdef0"},
            r"^'execution\.aws\.image_id' must be an AMI of region us-east-1 that this account can launch "
            r".*got 'ami-0123456789abcdef0' \(InvalidAMIID\.NotFound\)\.$",
        ),
        (  # as the image: EC2 refused each launch once the study existed
            "spot-profile",
            {"iam_instance_profile": "autotweak-wroker"},
            r"^'execution\.aws\.iam_instance_profile' must be the name of an instance profile "
            r"of this account .*got 'autotweak-wroker' \(NoSuchEntity\)\.$",
        ),
    ],
    ids=["instance type typo", "type of other regions", "image of no region", "instance profile typo"],
)
def test_what_ec2_does_not_have_is_named_before_the_study_exists(
    home, aws_stores, make_experiment, name, aws, refused
):
    exp = spot_experiment(make_experiment, aws_stores, name, **aws)
    with pytest.raises(AwsError, match=refused):
        optimize(exp, executor=SpotExecutor(2))
    assert_nothing_created(aws_stores, name)


def test_a_region_aws_does_not_have_is_one_line_naming_it(home, aws_stores, make_experiment):
    """moto answers a region it does not serve with no XML: ResponseParserError, no BotoCoreError."""
    exp = spot_experiment(make_experiment, aws_stores, "spot-region", region="us-est-1")
    said = (
        r"in region us-est-1, a region botocore does not know: did you mean .*'us-east-1'"
        r".*'execution\.aws\.region'"
    )
    assert_refused_in_one_line(exp, aws_stores, said)


@pytest.mark.parametrize(
    ("storage", "tracking_uri", "refused"),
    [
        (
            "postgresql+psycopg2://autotweak@127.0.0.1:5533/optuna",
            None,
            r"'storage' .* got host '127\.0\.0\.1'",
        ),
        ("postgresql://autotweak@localhost/optuna", None, r"'storage' .* got host 'localhost'"),
        ("postgresql:///optuna", None, r"'storage' .* got host none \(a local socket\)"),
        ("postgresql://autotweak@10.0.0.5/optuna", "http://[::1]:5099", r"'tracking_uri' .* got host '::1'"),
        (
            "postgresql://autotweak@10.0.0.5/optuna",
            "http://127.1.2.3:5099",
            r"'tracking_uri' .* '127\.1\.2\.3'",
        ),
    ],
)
def test_loopback_stores_are_refused_for_ec2_workers(
    make_experiment, monkeypatch, storage, tracking_uri, refused
):
    monkeypatch.delenv(ALLOW_LOOPBACK, raising=False)
    exp = make_experiment(execution={"aws": aws_section()})
    with pytest.raises(
        AutotweakError, match=refused + r".*HOST=<machine address> bash scripts/team_stores\.sh"
    ):
        SpotExecutor(2).check_setup(exp, storage, tracking_uri)


def test_a_password_in_the_tracking_uri_gets_mlflow_advice(make_experiment):
    exp = make_experiment(execution={"aws": aws_section()})
    storage = "postgresql://autotweak@10.0.0.5/optuna"
    with pytest.raises(
        AutotweakError, match=r"'tracking_uri' must not hold a password.*MLFLOW_TRACKING_USERNAME"
    ):
        SpotExecutor(2).check_setup(exp, storage, "http://me:secret@10.0.0.5:5000")
    with pytest.raises(AutotweakError, match=r"'storage' must not hold a password.*pgpass"):
        SpotExecutor(2).check_setup(exp, "postgresql://me:secret@10.0.0.5/optuna", None)


@pytest.mark.parametrize(
    ("storage", "tracking_uri", "refused"),
    [
        (
            "postgresql+psycopg2://u@10.0.0.5:5433/optuna?password=x",
            None,
            r"^'storage' .*'password' in its query",
        ),
        ("postgresql://u@/optuna?host=10.0.0.5&password=x", None, r"^'storage' .*'password' in its query"),
        ("mysql://u@10.0.0.5/optuna?passwd=x", None, r"'storage' .*'passwd' in its query"),
        ("postgresql://u:@10.0.0.5/optuna", None, r"'storage' .*a password before the host"),
        ("postgresql://u@10.0.0.5/optuna", "http://10.0.0.5:5000/?token=x", r"'tracking_uri' .*'token'"),
    ],
    ids=["password", "libpq host and password", "mysql passwd", "empty password", "token"],
)
def test_a_password_anywhere_in_a_url_is_refused_and_not_shown(
    make_experiment, storage, tracking_uri, refused
):
    exp = make_experiment(execution={"aws": aws_section()})
    with pytest.raises(
        AutotweakError, match=r"must not hold a password .* instead, got a URL with "
    ) as caught:
        SpotExecutor(2).check_setup(exp, storage, tracking_uri)
    assert re.search(refused, str(caught.value))
    assert "=x" not in str(caught.value), "the secret itself is not shown"


def test_a_second_launch_of_a_spot_study_says_to_resume_it_on_spot_instances(
    home, aws_stores, make_experiment
):
    """`autotweak resume NAME` alone would run the study's trials on this machine."""
    exp = spot_experiment(make_experiment, aws_stores, "spot-again")
    optuna.create_study(study_name="spot-again", storage=aws_stores.storage)
    with pytest.raises(
        AutotweakError, match=r"already exists.*`autotweak resume spot-again --executor aws-spot`"
    ):
        optimize(exp, executor=SpotExecutor(2))


@dataclass
class Network:
    """A VPC of moto's with a subnet, a security group and (in the region) a key pair."""

    subnet: str
    group: str
    default_group: str  # the default VPC's
    key: str = "autotweak-debug"


@pytest.fixture
def network(aws_stores) -> Iterator[Network]:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="autotweak-workers", Description="t", VpcId=vpc)["GroupId"]
    default = ec2.describe_security_groups(
        Filters=[
            {"Name": "group-name", "Values": ["default"]},
            {"Name": "vpc-id", "Values": [default_vpc(ec2)]},
        ]
    )["SecurityGroups"][0]["GroupId"]
    net = Network(subnet, group, default)
    ec2.create_key_pair(KeyName=net.key)
    yield net
    ec2.delete_key_pair(KeyName=net.key)
    ec2.delete_security_group(GroupId=group)
    ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_vpc(VpcId=vpc)


def default_vpc(ec2) -> str:
    return ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]


def typo(resource_id: str) -> str:
    """The id with its last character changed: one keystroke off."""
    return resource_id[:-1] + ("0" if resource_id[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("aws", "refused"),
    [
        (
            lambda n: {"subnet_id": typo(n.subnet)},
            lambda n: (
                rf"^'execution\.aws\.subnet_id' must be a subnet of region us-east-1 .*"
                rf"got '{typo(n.subnet)}' \(InvalidSubnetID\.NotFound\); did you mean '{n.subnet}'\?$"
            ),
        ),
        (
            lambda n: {"subnet_id": n.subnet, "security_group_ids": [typo(n.group)]},
            lambda n: (
                rf"^'execution\.aws\.security_group_ids' must hold ids of security groups of region "
                rf"us-east-1 .*got '{typo(n.group)}' \(InvalidGroup\.NotFound\); did you mean '{n.group}'\?$"
            ),
        ),
        (
            lambda n: {"subnet_id": n.subnet, "security_group_ids": ["autotweak-workers"]},
            lambda n: (
                rf"^'execution\.aws\.security_group_ids' must hold ids .*an id, not a name.*"
                rf"got 'autotweak-workers' \(.*\); did you mean '{n.group}' \(group 'autotweak-workers'\)\?$"
            ),
        ),
        (  # EC2 refuses a launch into one VPC with a group of another
            lambda n: {"subnet_id": n.subnet, "security_group_ids": [n.group, n.default_group]},
            lambda n: (
                rf"^'execution\.aws\.security_group_ids' must hold groups of the VPC the instances "
                rf"launch into \(vpc-\w+, the VPC of subnet {n.subnet}\).* "
                rf"got '{n.default_group}' of vpc-\w+\.$"
            ),
        ),
        (  # without a subnet, instances launch into the default VPC
            lambda n: {"security_group_ids": [n.group]},
            lambda n: (
                r"^'execution\.aws\.security_group_ids' must hold groups of the VPC .*"
                r"\(vpc-\w+, the default VPC, where instances launch without 'execution\.aws\.subnet_id'\)"
                rf".* got '{n.group}' of vpc-\w+\.$"
            ),
        ),
        (
            lambda n: {"subnet_id": n.subnet, "security_group_ids": [n.group], "key_name": "autotweak-debgu"},
            lambda n: (
                r"^'execution\.aws\.key_name' must be the name of a key pair of region us-east-1 .*"
                r"got 'autotweak-debgu' \(InvalidKeyPair\.NotFound\); did you mean 'autotweak-debug'\?$"
            ),
        ),
    ],
    ids=[
        "subnet typo",
        "group typo",
        "group name for its id",
        "group of another vpc",
        "group not of the default vpc",
        "key pair typo",
    ],
)
def test_a_network_ec2_would_refuse_at_launch_is_named_before_the_study_exists(
    home, aws_stores, make_experiment, network, aws, refused
):
    """EC2 refused each launch once the study existed; the launcher retried until it gave up."""
    exp = spot_experiment(make_experiment, aws_stores, "spot-network", **aws(network))
    assert_refused_in_one_line(exp, aws_stores, refused(network))


def test_a_network_ec2_has_passes_the_checks(aws_stores, make_experiment, network):
    exp = spot_experiment(
        make_experiment,
        aws_stores,
        "spot-network-ok",
        subnet_id=network.subnet,
        security_group_ids=[network.group],
        key_name=network.key,
    )
    SpotExecutor(2).check_setup(exp, aws_stores.storage, aws_stores.tracking_uri)


NO_DEFAULT_VPC = "eu-north-1"  # no other test launches there


@pytest.fixture
def no_default_vpc(aws_stores) -> Iterator[str]:
    """A region whose default VPC was deleted (as an account may), with a VPC of its own; made again after."""
    ec2 = boto3.client("ec2", region_name=NO_DEFAULT_VPC)
    vpc = default_vpc(ec2)
    for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    ec2.delete_vpc(VpcId=vpc)
    own = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=own, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    yield subnet
    ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_vpc(VpcId=own)
    ec2.create_default_vpc()


def test_no_subnet_where_the_region_has_no_default_vpc_is_named_before_the_study_exists(
    home, aws_stores, make_experiment, no_default_vpc
):
    """EC2 refuses a launch without a subnet there: the check was skipped, and every launch refused."""
    exp = spot_experiment(make_experiment, aws_stores, "spot-novpc", region=NO_DEFAULT_VPC)
    refused = (
        rf"^'execution\.aws\.subnet_id' is required in region {NO_DEFAULT_VPC}: this account has no "
        rf"default VPC there, and EC2 refuses a launch that names no subnet; .*"
        rf"; the region's subnets: '{no_default_vpc}'\.$"
    )
    assert_refused_in_one_line(exp, aws_stores, refused)
    with_subnet = spot_experiment(
        make_experiment, aws_stores, "spot-novpc", region=NO_DEFAULT_VPC, subnet_id=no_default_vpc
    )
    SpotExecutor(2).check_setup(with_subnet, aws_stores.storage, aws_stores.tracking_uri)
