{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ServiceAccount",
      "Effect": "Allow",
      "Principal": {"Federated": "${oidc_provider_arn}"},
      "Action": "sts:AssumeRoleWithWebIdentity",
      "Condition": {
        "StringEquals": {
          "${oidc_issuer}:sub": "system:serviceaccount:${namespace}:${service_account}",
          "${oidc_issuer}:aud": "sts.amazonaws.com"
        }
      }
    }
  ]
}
